import { describe, expect, it } from 'vitest';
import { asVariableType } from './variable-types.js';

describe('a value as a declared variable type', () => {
  it.each([
    ['number', 42, 42],
    ['number', ' -4.5e1 ', -45],
    ['boolean', ' TRUE ', true],
    ['boolean', 'false', false],
    ['text', 7, '7'],
    ['text', { a: 1 }, '{"a":1}'],
    ['datetime', '2026-01-31T09:00:00Z', '2026-01-31T09:00:00Z'],
    ['map', '{"a":[1]}', { a: [1] }],
    ['list', '[1,"x"]', [1, 'x']],
    ['list', null, null],
  ] as const)('%s from %j is %j', (type, value, expected) => {
    expect(asVariableType(type, value)).toEqual({ value: expected });
  });

  it.each([
    ['number', 'abc'],
    ['number', '1e400'],
    ['number', ''],
    ['number', true],
    ['boolean', 'yes'],
    ['boolean', 1],
    ['datetime', '2026-02-30T00:00:00Z'],
    ['datetime', 1700000000],
    ['map', '[1]'],
    ['map', '{not json'],
    ['list', '{"a":1}'],
  ] as const)('%s from %j is refused', (type, value) => {
    expect(asVariableType(type, value)).toBeUndefined();
  });

  it('decoded JSON text comes out well-formed (a \\ud800 escape is no lone surrogate)', () => {
    expect(asVariableType('list', '["\\ud800ok"]')).toEqual({ value: ['\ufffdok'] });
    expect(asVariableType('map', '{"\\udc00":"\\ud800"}')).toEqual({ value: { '\ufffd': '\ufffd' } });
  });
});
