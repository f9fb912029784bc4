/**
 * Host patterns of a secret's `allowedHosts` (SPEC §1): exact host names,
 * `*.domain` wildcards and IP literals. Pure: parsing to a canonical form
 * and matching a request's host against the list.
 */
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';

export const MAX_ALLOWED_HOSTS = 20;

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export type HostPatternResult = { ok: true; pattern: string } | { ok: false; message: string };

function canonicalHostName(name: string): string | undefined {
  const ascii = domainToASCII(name);
  if (!ascii || ascii.length > 253) return undefined;
  return ascii.split('.').every((l) => LABEL.test(l)) ? ascii : undefined;
}

type Tldts = typeof import('tldts');
let tldts: Tldts | undefined;

/**
 * The public suffix `host` ends in (ICANN and private sections of the list).
 * The list is loaded on the first wildcard checked: it costs ~6 MiB of memory
 * a server that never checks one does not need.
 */
function publicSuffixOf(host: string): string | null {
  tldts ??= createRequire(import.meta.url)('tldts') as Tldts;
  return tldts.parse(host, { allowPrivateDomains: true }).publicSuffix;
}

/** Canonical form of one pattern, or why it is not one. */
export function parseHostPattern(input: string): HostPatternResult {
  let text = input.trim().toLowerCase();
  if (text.endsWith('.')) text = text.slice(0, -1);
  if (text === '') return { ok: false, message: 'is empty' };
  if (/[/:@?#\s]/.test(text) && !(text.startsWith('[') || isIP(text) === 6)) {
    return { ok: false, message: `"${input}" must be a host name only, without scheme, port or path` };
  }
  const bracketed = /^\[(.+)\]$/.exec(text);
  const ipText = bracketed?.[1] ?? text;
  const family = isIP(ipText);
  if (family === 4) return { ok: true, pattern: ipText };
  if (family === 6) {
    // A zone id (fe80::1%eth0) names an interface of one machine, not a host: URLs cannot hold one.
    if (ipText.includes('%')) return { ok: false, message: `"${input}": an IPv6 zone id (%…) is not allowed` };
    return { ok: true, pattern: new URL(`http://[${ipText}]/`).hostname.slice(1, -1) };
  }
  if (bracketed) return { ok: false, message: `"${input}" is not an IPv6 address` };
  if (text.startsWith('*.')) {
    const rest = canonicalHostName(text.slice(2));
    if (!rest?.includes('.')) {
      return {
        ok: false,
        message: `"${input}": a wildcard needs a domain of at least two labels, such as *.example.com`,
      };
    }
    // `*.co.uk`, `*.github.io`: every registrant's hosts under a public suffix (the Public
    // Suffix List's ICANN and private sections), not one organisation's.
    if (publicSuffixOf(rest) === rest) {
      return {
        ok: false,
        message: `"${input}": ${rest} is a public suffix (anyone can register a name under it); name a domain of your own, such as *.example.${rest}`,
      };
    }
    return { ok: true, pattern: `*.${rest}` };
  }
  if (text.includes('*'))
    return { ok: false, message: `"${input}": "*" is only allowed as the first label (*.example.com)` };
  if (/^[\d.]+$/.test(text)) return { ok: false, message: `"${input}" is not a valid IPv4 address` };
  const host = canonicalHostName(text);
  return host ? { ok: true, pattern: host } : { ok: false, message: `"${input}" is not a valid host name` };
}

/** Canonical, de-duplicated list, or the per-entry problems. */
export function parseAllowedHosts(
  list: readonly string[],
): { ok: true; hosts: string[] } | { ok: false; errors: { index: number; message: string }[] } {
  const errors: { index: number; message: string }[] = [];
  const hosts: string[] = [];
  list.forEach((entry, index) => {
    const r = parseHostPattern(entry);
    if (!r.ok) errors.push({ index, message: r.message });
    else if (!hosts.includes(r.pattern)) hosts.push(r.pattern);
  });
  if (errors.length > 0) return { ok: false, errors };
  if (hosts.length > MAX_ALLOWED_HOSTS) {
    return { ok: false, errors: [{ index: MAX_ALLOWED_HOSTS, message: `at most ${MAX_ALLOWED_HOSTS} hosts` }] };
  }
  return { ok: true, hosts };
}

/** A URL's hostname as patterns are written: lowercase, ASCII, without brackets or a trailing dot. */
function comparableHost(host: string): string {
  let h = host.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return isIP(h) ? h : domainToASCII(h) || h;
}

/**
 * Every pattern that allows `host`: the host itself and each `*.domain`
 * above it (`a.b.example.com` → itself, `*.b.example.com`, `*.example.com`).
 * `hostAllowed(list, host)` holds exactly when `list` holds one of them.
 */
export function patternsAllowing(host: string): string[] {
  const ascii = comparableHost(host);
  if (ascii === '') return [];
  if (isIP(ascii)) return [ascii];
  const labels = ascii.split('.');
  const patterns = [ascii];
  for (let i = 1; i <= labels.length - 2; i++) patterns.push(`*.${labels.slice(i).join('.')}`);
  return patterns;
}

/**
 * Whether `host` (a URL's hostname) is allowed by `patterns`. `*.example.com`
 * matches any depth below example.com, never example.com itself.
 */
export function hostAllowed(patterns: readonly string[], host: string): boolean {
  const ascii = comparableHost(host);
  for (const p of patterns) {
    if (p.startsWith('*.') ? ascii.endsWith(p.slice(1)) && ascii.length > p.length - 1 : ascii === p) return true;
  }
  return false;
}
