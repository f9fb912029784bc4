import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  hostAllowed,
  MAX_ALLOWED_HOSTS,
  parseAllowedHosts,
  parseHostPattern,
  patternsAllowing,
} from './allowed-hosts.js';

describe('allowed host patterns', () => {
  it.each([
    ['api.zendesk.com', 'api.zendesk.com'],
    ['  API.Zendesk.COM. ', 'api.zendesk.com'],
    ['*.zendesk.com', '*.zendesk.com'],
    ['localhost', 'localhost'],
    ['127.0.0.1', '127.0.0.1'],
    ['[::1]', '::1'],
    ['2001:DB8::0:1', '2001:db8::1'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['*.example.co.uk', '*.example.co.uk'],
    ['*.acme.github.io', '*.acme.github.io'],
    ['*.internal.corp', '*.internal.corp'],
  ])('accepts %s as %s', (input, canonical) => {
    expect(parseHostPattern(input)).toEqual({ ok: true, pattern: canonical });
  });

  it.each([
    '',
    'https://api.example.com',
    'api.example.com:443',
    'api.example.com/path',
    'user@example.com',
    '*.com',
    'api.*.example.com',
    '*',
    '-bad.example.com',
    '999.1.1.1',
    '[not-ip]',
    'a b.example.com',
    `${'a'.repeat(64)}.example.com`,
    '*.co.uk',
    '*.github.io',
    '*.blogspot.com',
    'fe80::1%eth0',
    '[fe80::1%25eth0]',
    '::1%1',
  ])('refuses %j', (input) => {
    expect(parseHostPattern(input).ok).toBe(false);
  });

  it('de-duplicates and caps the list', () => {
    expect(parseAllowedHosts(['a.example.com', 'A.example.com'])).toEqual({ ok: true, hosts: ['a.example.com'] });
    const many = Array.from({ length: MAX_ALLOWED_HOSTS + 1 }, (_, i) => `h${i}.example.com`);
    expect(parseAllowedHosts(many).ok).toBe(false);
  });

  it('matches exact hosts and wildcard subdomains, never the bare domain or a lookalike', () => {
    const list = ['api.example.com', '*.zendesk.com'];
    expect(hostAllowed(list, 'api.example.com')).toBe(true);
    expect(hostAllowed(list, 'API.example.com.')).toBe(true);
    expect(hostAllowed(list, 'acme.zendesk.com')).toBe(true);
    expect(hostAllowed(list, 'a.b.zendesk.com')).toBe(true);
    expect(hostAllowed(list, 'zendesk.com')).toBe(false);
    expect(hostAllowed(list, 'evilzendesk.com')).toBe(false);
    expect(hostAllowed(list, 'api.example.com.evil.net')).toBe(false);
    expect(hostAllowed(['::1'], '[::1]')).toBe(true);
  });

  it('never lets a host outside the list match (property)', () => {
    fc.assert(
      fc.property(fc.domain(), fc.domain(), (allowed, other) => {
        fc.pre(allowed !== other && !other.endsWith(`.${allowed}`));
        expect(hostAllowed([allowed], other)).toBe(false);
        expect(hostAllowed([allowed], allowed)).toBe(true);
      }),
    );
  });

  it('lists every pattern that allows a host, and only those', () => {
    expect(patternsAllowing('A.b.Example.com.')).toEqual(['a.b.example.com', '*.b.example.com', '*.example.com']);
    expect(patternsAllowing('localhost')).toEqual(['localhost']);
    expect(patternsAllowing('127.0.0.1')).toEqual(['127.0.0.1']);
    expect(patternsAllowing('[::1]')).toEqual(['::1']);
    expect(patternsAllowing('bücher.example')).toEqual(['xn--bcher-kva.example']);
  });

  it('patternsAllowing(host) holds exactly the parsed patterns that allow host (property)', () => {
    const label = fc.stringMatching(/^[a-c]{1,2}$/);
    // Patterns cut from the host itself (exact or wildcard, any depth) and unrelated ones.
    const pick = fc.record({ cut: fc.nat(5), wild: fc.boolean(), other: fc.option(fc.domain(), { freq: 3 }) });
    fc.assert(
      fc.property(
        fc.array(label, { minLength: 1, maxLength: 5 }),
        fc.array(pick, { maxLength: 5 }),
        (labels, picks) => {
          const host = labels.join('.');
          const patterns = picks.flatMap(({ cut, wild, other }) => {
            const base = other ?? labels.slice(Math.min(cut, labels.length - 1)).join('.');
            const parsed = parseHostPattern(wild ? `*.${base}` : base);
            return parsed.ok ? [parsed.pattern] : [];
          });
          const allowing = new Set(patternsAllowing(host));
          expect(patterns.some((p) => allowing.has(p))).toBe(hostAllowed(patterns, host));
        },
      ),
    );
  });
});
