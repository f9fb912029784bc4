/**
 * Redis for the multi-server tests: 127.0.0.1:6379 on development and CI
 * machines. Under CI=true an unreachable Redis is a failure; elsewhere the
 * skip is announced on stderr.
 */
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.HUSH_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function reachable(): Promise<boolean> {
  const r = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0 });
  r.on('error', () => {});
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export const redisUp = await reachable();
if (!redisUp) {
  if (process.env.CI === 'true')
    throw new Error(`Redis is not reachable at ${REDIS_URL}; under CI=true the Redis tests are mandatory.`);
  process.stderr.write(
    `\n[hush tests] NOTICE: Redis not reachable at ${REDIS_URL}: shared rate-limit tests are SKIPPED.\n`,
  );
}
