/**
 * Gives memory back when the server is idle. V8 collects garbage as it
 * allocates, so a server that goes quiet keeps the garbage of its last busy
 * moment (and of start-up: migrations, the OpenAPI document) — tens of MB of
 * RSS for as long as it stays idle. One full collection runs after start-up
 * and then once per quiet period (no request for `quietMs`); under load it
 * never runs.
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
  let collected = false;
  app.addHook('onRequest', async () => {
    requests += 1;
  });
  const timer = setInterval(() => {
    if (requests !== seen) {
      seen = requests;
      collected = false;
    } else if (!collected) {
      collected = true;
      // The second pass frees what the first one's finalisers released, and lets V8 shrink its heap.
      gc();
      gc();
    }
  }, quietMs);
  timer.unref();
  return { collect: () => gc(), stop: () => clearInterval(timer) };
}
