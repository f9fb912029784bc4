/**
 * The SSRF guard's address rules (SPEC §3 "Outbound calls"): loopback,
 * private, link-local, CGNAT, multicast, reserved and cloud-metadata
 * addresses are refused unless HUSH_OUTBOUND_ALLOW_CIDRS opens them. IPv4
 * inside IPv6 (mapped, NAT64, compatible) is judged as the IPv4 it carries.
 * The check runs on the resolved address at connect time (see outbound.ts).
 */
import { BlockList, isIP } from 'node:net';

const BLOCKED_V4: [string, number][] = [
  ['0.0.0.0', 8], // "this" network
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // CGNAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata (169.254.169.254)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // TEST-NET-1
  ['192.88.99.0', 24], // 6to4 relay
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // TEST-NET-2
  ['203.0.113.0', 24], // TEST-NET-3
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];

const BLOCKED_V6: [string, number][] = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['100::', 64], // discard
  ['2001::', 23], // IETF protocol assignments (Teredo, ORCHID…)
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4 (embeds IPv4)
  ['fc00::', 7], // unique local (incl. fd00:ec2::254, AWS metadata)
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
];

const blocked = new BlockList();
for (const [a, p] of BLOCKED_V4) blocked.addSubnet(a, p, 'ipv4');
for (const [a, p] of BLOCKED_V6) blocked.addSubnet(a, p, 'ipv6');

/** Expands an IPv6 address to its 8 groups. */
export function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const o = v4[1].split('.').map(Number);
    text = `${text.slice(0, -v4[1].length)}${(((o[0] ?? 0) << 8) | (o[1] ?? 0)).toString(16)}:${(((o[2] ?? 0) << 8) | (o[3] ?? 0)).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array(8 - h.length - t.length).fill('0');
  return [...h, ...zeros, ...t].map((g) => Number.parseInt(g, 16));
}

/** The IPv4 address an IPv6 address carries (mapped, compatible, NAT64), if any. */
export function embeddedIPv4(address: string): string | undefined {
  const g = ipv6Groups(address);
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const [a, b, c, d, e, f, hi, lo] = g as [number, number, number, number, number, number, number, number];
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && (f === 0xffff || f === 0) && (hi !== 0 || f === 0xffff))
    return v4(hi, lo);
  if (a === 0x64 && b === 0xff9b && c === 0 && d === 0 && e === 0 && f === 0) return v4(hi, lo); // NAT64 well-known prefix
  return undefined;
}

export type AddressVerdict = { allowed: true } | { allowed: false; reason: string };

/**
 * Whether a connection to `address` (an IP literal) is allowed. `allow`
 * holds ranges the operator opened; they win over the built-in blocks.
 */
export function checkAddress(address: string, allow: BlockList): AddressVerdict {
  const bare = address.startsWith('[') ? address.slice(1, -1) : address;
  const family = isIP(bare);
  if (family === 0) return { allowed: false, reason: 'not an IP address' };
  if (family === 6) {
    if (allow.check(bare, 'ipv6')) return { allowed: true };
    const v4 = embeddedIPv4(bare);
    if (v4 !== undefined) return checkAddress(v4, allow);
    return blocked.check(bare, 'ipv6')
      ? { allowed: false, reason: 'a private, local or reserved IPv6 address' }
      : { allowed: true };
  }
  if (allow.check(bare, 'ipv4')) return { allowed: true };
  return blocked.check(bare, 'ipv4')
    ? { allowed: false, reason: 'a private, local or reserved IPv4 address' }
    : { allowed: true };
}

/**
 * Whether `address` (an IP literal) lies inside a range of `allow` — the
 * operator's own networks — judging IPv4 inside IPv6 as the IPv4 it carries.
 */
export function inAllowList(address: string, allow: BlockList): boolean {
  const bare = address.startsWith('[') ? address.slice(1, -1) : address;
  const family = isIP(bare);
  if (family === 4) return allow.check(bare, 'ipv4');
  if (family !== 6) return false;
  if (allow.check(bare, 'ipv6')) return true;
  const v4 = embeddedIPv4(bare);
  return v4 !== undefined && allow.check(v4, 'ipv4');
}
