/**
 * Gives memory back when the server is idle. V8 collects garbage as it
 * allocates, so a server that goes quiet keeps the garbage of its last busy
 * moment (and of start-up: migrations, the OpenAPI document) — tens of MB of
 * RSS for as long as it stays idle. One full collection runs after start-up,
 * and two per quiet period (after `quietMs` and `2 × quietMs` without a
 * request); under load none runs.
 *
 * `gc` is exposed with `v8.setFlagsFromString('--expose-gc')` and taken from
 * a fresh context, where V8 installs it for flags set at run time.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FastifyInstance } from 'fastify';

export interface IdleCollector {
  /** Collects now (after start-up). */
  collect(): void;
  stop(): void;
}

/** Call before the server listens (it adds a request hook). */
export function collectWhenIdle(app: FastifyInstance, quietMs = 5_000): IdleCollector {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as unknown;
  if (typeof gc !== 'function') return { collect: () => {}, stop: () => {} };
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
    // On the first two quiet ticks: V8 hands freed pages back lazily, and the
    // second collection returns what the first one only released.
    if (quietTicks <= 2) gc();
  }, quietMs);
  timer.unref();
  return { collect: () => gc(), stop: () => clearInterval(timer) };
}
