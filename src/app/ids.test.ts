import { describe, expect, it } from 'vitest';
import { newId, nowIso } from './ids.js';

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

describe('newId', () => {
  it('gives distinct, well-formed ids that sort by creation time, across refills of the random pool', () => {
    const ids: string[] = [];
    // 409 ids per 4 KiB of pooled randomness: 2,000 ids cross several refills.
    for (let i = 0; i < 2_000; i++) ids.push(newId('evt'));
    for (const id of ids) expect(id).toMatch(/^evt_[0-9a-hjkmnp-tv-z]{26}$/);
    expect(new Set(ids).size).toBe(ids.length);
    // The leading 9 characters hold 45 of the 48 bits of the creation millisecond: never decreasing.
    const times = ids.map((id) => id.slice(4, 13));
    expect([...times].sort()).toEqual(times);
    // The 80 random bits differ even within one millisecond.
    const tails = new Set(ids.map((id) => id.slice(14)));
    expect(tails.size).toBe(ids.length);
  });
});
