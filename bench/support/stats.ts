/**
 * Latency statistics for the benchmark: nearest-rank percentiles, medians,
 * and a summary of one run of sequential requests.
 */

export interface LatencySummary {
  /** Requests measured. */
  count: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  max: number;
  /** Sequential throughput: count / (sum of latencies). */
  reqPerSec: number;
}

/** Nearest-rank percentile (p in 0..100) of an ascending-sorted array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Summary of latencies in milliseconds. */
export function summarize(samplesMs: readonly number[]): LatencySummary {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const total = sorted.reduce((sum, v) => sum + v, 0);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    mean: sorted.length > 0 ? total / sorted.length : Number.NaN,
    max: sorted.at(-1) ?? Number.NaN,
    reqPerSec: total > 0 ? (sorted.length * 1000) / total : Number.NaN,
  };
}

/**
 * Combines repetitions: each field is the median of that field across the
 * repetitions (the reported p50 is the median of the repetitions' p50s).
 */
export function medianOfRuns(runs: readonly LatencySummary[]): LatencySummary {
  const field = (pick: (s: LatencySummary) => number) => median(runs.map(pick));
  return {
    count: runs.reduce((sum, r) => sum + r.count, 0),
    p50: field((s) => s.p50),
    p95: field((s) => s.p95),
    p99: field((s) => s.p99),
    mean: field((s) => s.mean),
    max: Math.max(...runs.map((s) => s.max)),
    reqPerSec: field((s) => s.reqPerSec),
  };
}

/** A small seeded PRNG (mulberry32) so runs pick the same "random" ids. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
