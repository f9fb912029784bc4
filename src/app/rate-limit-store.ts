/**
 * Rate-limit counts in Redis, shared by every server (`HUSH_REDIS_URL`).
 * The plugin's own Redis store, with one change: when Redis does not answer,
 * a limited request is refused with 503 `rate_limit_unavailable` — never let
 * through uncounted, and never a 500 (the plugin passes the client's error on
 * as it is).
 */
import { createRequire } from 'node:module';
import type {
  FastifyRateLimitOptions,
  FastifyRateLimitStore,
  FastifyRateLimitStoreCtor,
  RateLimitOptions,
} from '@fastify/rate-limit';
import type { Redis } from 'ioredis';
import { AppError } from './errors.js';

type Store = FastifyRateLimitStore;
type Callback = Parameters<Store['incr']>[1];
type PluginRedisStore = new (
  continueExceeding: boolean | undefined,
  exponentialBackoff: boolean | undefined,
  redis: Redis,
  key: string,
) => Store & { read: Store['incr'] };

// The plugin ships its stores as CommonJS files without types.
const RedisStore = createRequire(import.meta.url)('@fastify/rate-limit/store/RedisStore.js') as PluginRedisStore;

export class RateLimitUnavailableError extends AppError {
  constructor() {
    super(503, 'rate_limit_unavailable', 'Rate limits cannot be counted right now; try again shortly.', {
      headers: { 'retry-after': '5' },
    });
  }
}

function guarded(callback: Callback): Callback {
  return (error, result) => (error ? callback(new RateLimitUnavailableError()) : callback(null, result));
}

class GuardedStore implements Store {
  constructor(private readonly inner: Store & { read: Store['incr'] }) {}

  incr(key: string, callback: Callback, timeWindow: number, max: number): void {
    this.inner.incr(key, guarded(callback), timeWindow, max);
  }

  /** The plugin's non-counting check (`{ increment: false }`). */
  read(key: string, callback: Callback, timeWindow: number, max: number): void {
    this.inner.read(key, guarded(callback), timeWindow, max);
  }

  child(routeOptions: Parameters<Store['child']>[0]): Store {
    return new GuardedStore(this.inner.child(routeOptions) as Store & { read: Store['incr'] });
  }
}

/** The `store` option of @fastify/rate-limit: counts under `nameSpace` in `redis`. */
export function redisRateLimitStore(redis: Redis, nameSpace: string): FastifyRateLimitStoreCtor {
  return class extends GuardedStore {
    constructor(options: FastifyRateLimitOptions) {
      // The plugin hands a store its global settings, these two among them.
      const { continueExceeding, exponentialBackoff } = options as RateLimitOptions;
      super(new RedisStore(continueExceeding, exponentialBackoff, redis, nameSpace));
    }
  };
}
