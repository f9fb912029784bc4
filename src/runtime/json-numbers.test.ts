import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { inexactInteger, keepNumbers, parseJsonExact } from './json-numbers.js';

describe('parseJsonExact', () => {
  it('an integer JavaScript would write back otherwise comes out as its digits; every other value as JSON.parse reads it', () => {
    const text =
      '{"id":9007199254740993,"edge":9007199254740992,"neg":-9007199254740995,"small":42,"price":1.50,"big":1e400,' +
      '"quoted":"9007199254740993","list":[12345678901234567890,{"deep":[[98765432109876543210]]}],' +
      '"__proto__":{"x":99999999999999999999},"exactlyHeld":100000000000000000000}';
    const parsed = parseJsonExact(text) as Record<string, unknown>;
    expect(parsed.id).toBe('9007199254740993');
    expect(parsed.edge).toBe(9007199254740992); // 2^53 itself is held exactly
    expect(parsed.neg).toBe('-9007199254740995');
    expect(parsed.small).toBe(42);
    expect(parsed.price).toBe(1.5);
    expect(parsed.big).toBe(Number.POSITIVE_INFINITY);
    expect(parsed.quoted).toBe('9007199254740993');
    expect(parsed.list).toEqual(['12345678901234567890', { deep: [['98765432109876543210']] }]);
    // A key named __proto__ stays a key, its value walked too; the prototype is untouched.
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(parsed, '__proto__')?.value).toEqual({ x: '99999999999999999999' });
    // 10^20 is a double exactly: kept as the number.
    expect(parsed.exactlyHeld).toBe(1e20);
  });

  it('a bare integer, and strings that only look like placeholders, come back as they are', () => {
    expect(parseJsonExact('9007199254740993')).toBe('9007199254740993');
    expect(parseJsonExact('"\\u0000abc:0"')).toBe('\u0000abc:0');
    expect(parseJsonExact('["\\u00000123456789abcdef:0", 12345678901234567890]')).toEqual([
      '\u00000123456789abcdef:0',
      '12345678901234567890',
    ]);
  });

  it('refuses what JSON.parse refuses', () => {
    for (const bad of ['', '{', '{"a":01234567890123456789}', '[12345678901234567890,]', 'NaN']) {
      expect(() => parseJsonExact(bad), bad).toThrow(SyntaxError);
    }
  });

  it('a deeply nested answer is walked without recursion', () => {
    const depth = 50_000;
    const text = `${'['.repeat(depth)}12345678901234567890${']'.repeat(depth)}`;
    let value = parseJsonExact(text);
    for (let i = 0; i < depth; i++) value = (value as unknown[])[0];
    expect(value).toBe('12345678901234567890');
  });

  it('property: equal to JSON.parse wherever JavaScript writes every integer back as sent; else those integers are their digits', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), (text) => {
        expect(parseJsonExact(text)).toEqual(JSON.parse(text));
      }),
    );
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }), fc.json({ maxDepth: 2 }), (n, other) => {
        const text = `{"n":${n},"other":${other},"in":[${n}]}`;
        const parsed = parseJsonExact(text) as { n: unknown; other: unknown; in: unknown[] };
        // A number when JavaScript writes it back digit for digit, else its digits: either way a
        // template writes what the service sent.
        expect(parsed.n).toEqual(String(Number(n)) === String(n) ? Number(n) : String(n));
        expect(String(parsed.n)).toBe(String(n));
        expect(parsed.in[0]).toEqual(parsed.n);
        expect(parsed.other).toEqual(parseJsonExact(other));
      }),
    );
  });
});

describe('inexactInteger', () => {
  it('is true only for whole numbers JavaScript would not write back digit for digit', () => {
    expect(inexactInteger('9007199254740992')).toBe(false);
    expect(inexactInteger('9007199254740993')).toBe(true);
    expect(inexactInteger('-9007199254740993')).toBe(true);
    expect(inexactInteger('100000000000000000000')).toBe(false); // 10^20 is written so
    expect(inexactInteger('1000000000000000000000')).toBe(true); // 10^21 is held, but written 1e+21
    expect(inexactInteger('54202268965052490')).toBe(false); // not held exactly, yet written back the same
    expect(inexactInteger('0000000000000000042')).toBe(false);
    expect(inexactInteger('1'.repeat(400))).toBe(true); // past the largest double
    expect(inexactInteger('9007199254740993.5')).toBe(false); // not an integer's text
    expect(inexactInteger('42')).toBe(false);
  });
});

describe('keepNumbers', () => {
  it('gives every number JavaScript would rewrite back as written', () => {
    const source = '{"a":1.50,"b":[9007199254740993,-0,1e400],"c":"1.50","d":2}';
    const numbers = keepNumbers(source);
    expect(numbers.kept).toBe(true);
    expect(numbers.restore(JSON.stringify(JSON.parse(numbers.text)))).toBe(source);
    expect(keepNumbers('{"d":2,"e":"x"}').kept).toBe(false);
  });
});
