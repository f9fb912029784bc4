/**
 * Closed-loop load at fixed concurrency: `concurrency` loops each await one
 * request and immediately start the next, until a fixed total has been
 * sent. Throughput is wall-clock (total ÷ elapsed); latencies are per
 * request; CPU is this process's user + system time (every thread of it:
 * JavaScript, libuv, GC) per request over the run.
 */
import { median, percentile } from './stats.js';

export interface LoadRun {
  requests: number;
  concurrency: number;
  seconds: number;
  reqPerSec: number;
  p50: number;
  p99: number;
  /** This process's CPU time per request, µs. */
  cpuUsPerRequest: number;
}

/** Sends `total` requests, `concurrency` at a time; `send` throws on a wrong answer, which stops the run. */
export async function closedLoop(
  total: number,
  concurrency: number,
  send: (index: number) => Promise<void>,
): Promise<LoadRun> {
  const samples = new Float64Array(total);
  let next = 0;
  let failed = false;
  const loop = async () => {
    while (!failed) {
      const i = next++;
      if (i >= total) return;
      const t0 = performance.now();
      try {
        await send(i);
      } catch (error) {
        failed = true;
        throw error;
      }
      samples[i] = performance.now() - t0;
    }
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, loop));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    requests: total,
    concurrency,
    seconds,
    reqPerSec: total / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    cpuUsPerRequest: (cpu.user + cpu.system) / total,
  };
}

/** Each field the median over the repetitions (requests and seconds summed). */
export function medianLoad(runs: readonly LoadRun[]): LoadRun {
  const field = (pick: (r: LoadRun) => number) => median(runs.map(pick));
  return {
    requests: runs.reduce((sum, r) => sum + r.requests, 0),
    concurrency: runs[0]?.concurrency ?? 0,
    seconds: runs.reduce((sum, r) => sum + r.seconds, 0),
    reqPerSec: field((r) => r.reqPerSec),
    p50: field((r) => r.p50),
    p99: field((r) => r.p99),
    cpuUsPerRequest: field((r) => r.cpuUsPerRequest),
  };
}

/**
 * The ratio of `subject` to `base` throughput as the median of the
 * per-repetition ratios (repetition i of each ran back to back): steadier
 * than a ratio of medians when other load on the machine comes and goes.
 */
export function pairedRatio(subject: readonly LoadRun[], base: readonly LoadRun[]): number {
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(subject.length, base.length); i++) {
    ratios.push((subject[i] as LoadRun).reqPerSec / (base[i] as LoadRun).reqPerSec);
  }
  return median(ratios);
}
