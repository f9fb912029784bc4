import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mixesScripts, roleNameKey } from './role-names.js';

describe('role names', () => {
  it('fullwidth, case and dotless-i variants of a name have its key', () => {
    for (const name of ['owner', 'OWNER', 'Owner', 'ｏｗｎｅｒ', 'ＯＷＮＥＲ']) expect(roleNameKey(name)).toBe('owner');
    expect(roleNameKey('Admın')).toBe('admin');
    expect(roleNameKey('Ｏｐｓ')).toBe(roleNameKey('Ops'));
    // Accents are letters of their own: a different name.
    expect(roleNameKey('Öps')).not.toBe(roleNameKey('Ops'));
  });

  it('a key is its own key (comparing keys is an equivalence)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 20 }), (name) => {
        const key = roleNameKey(name);
        expect(roleNameKey(key)).toBe(key);
      }),
    );
  });

  it('Latin mixed with Cyrillic or Greek is refused; one script, or another script beside it, is not', () => {
    expect(mixesScripts('\u041ewner')).toBe(true); // Cyrillic О + Latin
    expect(mixesScripts('\u039fwner')).toBe(true); // Greek Ο + Latin
    expect(mixesScripts('Οпер')).toBe(true); // Greek + Cyrillic
    expect(mixesScripts('Операторы')).toBe(false);
    expect(mixesScripts('Ομάδα')).toBe(false);
    expect(mixesScripts('Release managers 2')).toBe(false);
    expect(mixesScripts('Dev 開発')).toBe(false);
    expect(mixesScripts('ｏｗｎｅｒ')).toBe(false); // fullwidth Latin is Latin: caught by its key instead
  });
});
