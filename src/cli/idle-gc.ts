/**
 * Gives memory back when the server is idle. V8 collects garbage as it
 * allocates, so a server that goes quiet keeps the garbage of its last busy
 * moment (and of start-up: migrations, the OpenAPI document) — tens of MB of
 * RSS for as long as it stays idle. One full collection runs after start-up,
 * and at least two per quiet period (after `quietMs` and `2 × quietMs` without
 * a request, 5.5 s apart by default), more while the young generation is still
 * grown; under load none runs.
 *
 * `gc` is exposed with `v8.setFlagsFromString('--expose-gc')` and taken from
 * a fresh context, where V8 installs it for flags set at run time.
 */
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FastifyInstance } from 'fastify';

export interface IdleCollector {
  /** Collects now (after start-up). */
  collect(): void;
  stop(): void;
}

/**
 * Busy moments grow V8's young generation from 1–2 MiB to 32 MiB; a quiet
 * server wants it back to its starting size. Above this it is still grown.
 */
const YOUNG_GROWN_MIB = 4;
/** Collections per quiet period at most (the first two always run). */
const MAX_COLLECTIONS = 6;

/** Committed size of V8's young generation (new space), MiB. */
export function youngGenerationMiB(): number {
  const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return space ? space.space_size / 1_048_576 : 0;
}

/** Holds the garbage allocated before an idle collection, for the moment until it. */
const garbage: unknown[] = [];

/**
 * Quiet ticks, ms. V8 judges the allocation rate over the last 5 seconds of
 * its samples, which it takes at each collection, counting back whole
 * intervals until they cover 5 s: two collections exactly 5 s apart (give or
 * take the timer's jitter) may still count the busy moment before them, and
 * the young generation stays grown (seen: 3 of 4 runs at a 5,000 ms tick kept
 * 32 MiB after the second idle collection, none at 5,500 ms).
 */
export const QUIET_TICK_MS = 5_500;

/** V8's full garbage collection, exposed at run time (no node flag needed); undefined if V8 refuses. */
export function exposedGc(): (() => void) | undefined {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as unknown;
  return typeof gc === 'function' ? (gc as () => void) : undefined;
}

/** Call before the server listens (it adds a request hook). */
export function collectWhenIdle(app: FastifyInstance, quietMs = QUIET_TICK_MS): IdleCollector {
  const gc = exposedGc();
  if (!gc) return { collect: () => {}, stop: () => {} };
  const collect = () => {
    // A full collection shrinks the young generation only when the allocation
    // rate V8 saw since the previous collection is low but not zero, and an
    // idle server may allocate nothing at all between two ticks: a few KiB of
    // garbage make the rate measurable (seen: a server left at 147 MiB RSS
    // with a 32 MiB young generation through two idle collections).
    garbage.push(new Array(8_192).fill(0));
    garbage.length = 0;
    gc();
  };
  let requests = 0;
  let seen = 0;
  let quietTicks = 0;
  app.addHook('onRequest', async () => {
    requests += 1;
  });
  const timer = setInterval(() => {
    if (requests !== seen) {
      seen = requests;
      quietTicks = 0;
      return;
    }
    quietTicks += 1;
    // Two collections at least: V8 hands freed pages back lazily, and the
    // second returns what the first only released; then more while the young
    // generation has not shrunk (V8 judges the allocation rate over the last
    // few seconds, which at first still include the busy moment).
    if (quietTicks <= 2 || (quietTicks <= MAX_COLLECTIONS && youngGenerationMiB() > YOUNG_GROWN_MIB)) collect();
  }, quietMs);
  timer.unref();
  return { collect, stop: () => clearInterval(timer) };
}
