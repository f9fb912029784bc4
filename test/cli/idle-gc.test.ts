/**
 * The idle collector of `hush serve` (src/cli/idle-gc.ts), in a child node
 * process of its own so that nothing else allocates in its heap: a busy
 * moment grows V8's young generation; while requests keep coming no full
 * collection runs; once they stop, the young generation goes back to its
 * starting size within the quiet period's collections. (V8 may add a
 * memory-reducing collection of its own a few seconds after a full one, so
 * the count is checked from below only.)
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const QUIET_MS = 1_000;

/**
 * What both children start with: a full-GC counter, a Fastify app with the
 * idle collector (quiet ticks: `tick`, or the default), and a busy moment
 * (short-lived objects at a high rate, some surviving a while) that grows the
 * young generation.
 */
const prelude = (tick: string, busyMs: number) => `
import Fastify from 'fastify';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { collectWhenIdle, youngGenerationMiB, QUIET_TICK_MS } from ${JSON.stringify(path.join(ROOT, 'src/cli/idle-gc.ts'))};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let fullGcs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) fullGcs += 1;
}).observe({ entryTypes: ['gc'] });
const app = Fastify();
app.get('/', async () => ({ ok: true }));
const idle = collectWhenIdle(app${tick ? `, ${tick}` : ''});
await app.ready();
let keep = [];
const t0 = Date.now();
while (Date.now() - t0 < ${busyMs}) {
  const batch = [];
  for (let i = 0; i < 1_000; i++) batch.push({ i, s: 'x' + i });
  keep.push(batch);
  if (keep.length > 200) keep = keep.slice(100);
}
keep = null;
const grown = youngGenerationMiB();
`;

const CHILD = `${prelude(String(QUIET_MS), 1_000)}
await sleep(50);
const before = fullGcs;
// Requests every 250 ms for 4 quiet-period lengths: never quiet, never collected.
for (let i = 0; i < 16; i++) { await app.inject('/'); await sleep(250); }
const duringRequests = fullGcs - before;
const youngDuringRequests = youngGenerationMiB();
// Then quiet: collections on the quiet ticks.
await sleep(${QUIET_MS} * 8.5);
const quietGcs = fullGcs - before - duringRequests;
const young = youngGenerationMiB();
idle.stop();
process.stdout.write(JSON.stringify({ grown, duringRequests, youngDuringRequests, quietGcs, young }));
`;

/**
 * The default tick: a busy moment, then no request at all. After the second
 * quiet collection the young generation must be back, which needs the ticks
 * to be further apart than V8's 5-second window for the allocation rate.
 */
const CHILD_DEFAULT_TICK = `${prelude('', 1_500)}
const before = fullGcs;
// Just after the second tick's collection (the observer hears of it on the next turn).
await sleep(2 * QUIET_TICK_MS + 400);
const young = youngGenerationMiB();
idle.stop();
process.stdout.write(JSON.stringify({ tick: QUIET_TICK_MS, grown, gcs: fullGcs - before, young }));
`;

/** Runs a child script under tsx; what it printed, parsed. */
async function runChild(source: string): Promise<Record<string, number>> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', source],
    {
      cwd: ROOT,
      timeout: 60_000,
    },
  );
  return JSON.parse(stdout) as Record<string, number>;
}

// The two children mostly wait: they run side by side.
describe.concurrent('hush serve: collection when idle', () => {
  it('shrinks a grown young generation once requests stop, and never collects while they come', async () => {
    const r = await runChild(CHILD);
    // The busy moment did grow it (otherwise the test shows nothing).
    expect(r.grown).toBeGreaterThan(8);
    expect(r.duringRequests).toBe(0);
    expect(r.youngDuringRequests).toBeGreaterThan(8);
    expect(r.quietGcs).toBeGreaterThanOrEqual(2);
    expect(r.young).toBeLessThanOrEqual(4);
  }, 60_000);

  it('at the default tick, has the young generation back after the second quiet collection', async () => {
    const r = await runChild(CHILD_DEFAULT_TICK);
    expect(r.tick).toBeGreaterThan(5_000);
    expect(r.grown).toBeGreaterThan(8);
    expect(r.gcs).toBeGreaterThanOrEqual(2);
    expect(r.young).toBeLessThanOrEqual(4);
  }, 60_000);
});
