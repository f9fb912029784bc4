import { describe, expect, it } from 'vitest';
import { nowIso } from './ids.js';

describe('nowIso', () => {
  it('formats every instant as Date#toISOString does, repeated or not', () => {
    const instants = [0, 1, 1, 1_700_000_000_123, 1_700_000_000_123, 1_700_000_000_124, 1, 8.64e15, -1];
    for (const ms of instants) expect(nowIso(ms)).toBe(new Date(ms).toISOString());
  });

  it('is now when called without an instant', () => {
    const before = Date.now();
    const at = Date.parse(nowIso());
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(Date.now());
  });

  it('refuses an instant that is not a date, every time', () => {
    for (const bad of [Number.NaN, Number.NaN, 8.64e15 + 1]) expect(() => nowIso(bad)).toThrow(RangeError);
    expect(nowIso(5)).toBe('1970-01-01T00:00:00.005Z');
  });
});
