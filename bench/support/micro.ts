/** Per-call cost of small synchronous operations, for cost breakdowns next to throughput figures. */
import { median } from './stats.js';

/**
 * Median over `batches` of the mean µs per call of `fn`, after a warm-up of
 * one batch. Results are kept alive in a sink so the calls are not optimised away.
 */
export function microCost(fn: () => unknown, callsPerBatch = 20_000, batches = 5): number {
  const sink: unknown[] = new Array(64);
  for (let i = 0; i < callsPerBatch; i++) sink[i & 63] = fn();
  const costs: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t0 = performance.now();
    for (let i = 0; i < callsPerBatch; i++) sink[i & 63] = fn();
    costs.push(((performance.now() - t0) * 1000) / callsPerBatch);
  }
  if (sink.length !== 64) throw new Error('unreachable');
  return median(costs);
}

/** The same for an async operation awaited one call at a time (no concurrency). */
export async function asyncMicroCost(fn: () => Promise<unknown>, callsPerBatch = 5_000, batches = 5): Promise<number> {
  for (let i = 0; i < callsPerBatch; i++) await fn();
  const costs: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t0 = performance.now();
    for (let i = 0; i < callsPerBatch; i++) await fn();
    costs.push(((performance.now() - t0) * 1000) / callsPerBatch);
  }
  return median(costs);
}
