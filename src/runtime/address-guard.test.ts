import { BlockList } from 'node:net';
import { describe, expect, it } from 'vitest';
import { checkAddress, embeddedIPv4, inAllowList } from './address-guard.js';

const none = new BlockList();

describe('the SSRF address guard', () => {
  it.each([
    '127.0.0.1',
    '127.1.2.3',
    '0.0.0.0',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '100.64.0.1',
    '169.254.169.254',
    '224.0.0.1',
    '255.255.255.255',
    '::1',
    '::',
    '[::1]',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:169.254.169.254',
    '::127.0.0.1',
    '64:ff9b::a9fe:a9fe',
    'fe80::1',
    'fd00:ec2::254',
    'fc00::1',
    'ff02::1',
    '2002:7f00:1::',
  ])('refuses %s', (address) => {
    expect(checkAddress(address, none).allowed).toBe(false);
  });

  it.each(['93.184.216.34', '8.8.8.8', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])(
    'allows public %s',
    (address) => {
      expect(checkAddress(address, none)).toEqual({ allowed: true });
    },
  );

  it('opens exactly the configured ranges', () => {
    const allow = new BlockList();
    allow.addSubnet('127.0.0.0', 8, 'ipv4');
    expect(checkAddress('127.0.0.1', allow).allowed).toBe(true);
    expect(checkAddress('::ffff:127.0.0.1', allow).allowed).toBe(true);
    expect(checkAddress('10.0.0.1', allow).allowed).toBe(false);
    expect(checkAddress('::1', allow).allowed).toBe(false);
  });

  it('reads the IPv4 inside IPv6 forms', () => {
    expect(embeddedIPv4('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(embeddedIPv4('::ffff:a00:1')).toBe('10.0.0.1');
    expect(embeddedIPv4('64:ff9b::8.8.8.8')).toBe('8.8.8.8');
    expect(embeddedIPv4('2001:db8::1')).toBeUndefined();
  });

  it('refuses what is not an address', () => {
    expect(checkAddress('localhost', none).allowed).toBe(false);
  });
});

describe('inAllowList (where a secret may go over plain http)', () => {
  const opened = new BlockList();
  opened.addSubnet('10.20.0.0', 16, 'ipv4');
  opened.addSubnet('fd00:1::', 32, 'ipv6');
  it.each([
    ['10.20.3.4', true],
    ['[::ffff:10.20.3.4]', true],
    ['::ffff:a14:304', true],
    ['fd00:1::5', true],
    ['10.21.0.1', false],
    ['93.184.215.14', false],
    ['::ffff:93.184.215.14', false],
    ['fd00:2::5', false],
    ['not-an-address', false],
  ])('%s → %s', (address, expected) => {
    expect(inAllowList(address, opened)).toBe(expected);
  });
});
