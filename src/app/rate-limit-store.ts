/**
 * Where @fastify/rate-limit counts: in memory (one server), or in Redis,
 * shared by every server (`HUSH_REDIS_URL`). The plugin's own stores, with
 * two changes:
 *
 * - Routes whose limit names the same `groupId` count in one budget. The
 *   plugin gives every route a store of its own (a memory map per route, a
 *   Redis prefix per route) and only appends the group to the key, so by
 *   itself a group shares nothing across routes. Signing in and accepting
 *   an invitation are one group: both check an account's password.
 * - When Redis does not answer, a limited request is refused with 503
 *   `rate_limit_unavailable` — never let through uncounted, and never a 500
 *   (the plugin passes the client's error on as it is).
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

type Store = FastifyRateLimitStore & { read: FastifyRateLimitStore['incr'] };
type Callback = Parameters<Store['incr']>[1];
type RouteOptions = Parameters<Store['child']>[0];

// The plugin ships its stores as CommonJS files without types.
const requireStore = createRequire(import.meta.url);
const RedisStore = requireStore('@fastify/rate-limit/store/RedisStore.js') as new (
  continueExceeding: boolean | undefined,
  exponentialBackoff: boolean | undefined,
  redis: Redis,
  key: string,
) => Store;
const LocalStore = requireStore('@fastify/rate-limit/store/LocalStore.js') as new (
  continueExceeding: boolean | undefined,
  exponentialBackoff: boolean | undefined,
) => Store;

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

class HushStore implements Store {
  constructor(
    private readonly inner: Store,
    /** Redis: its errors become 503. */
    private readonly guard: boolean,
    /** Every route group's one store, shared by the whole tree of children. */
    private readonly groups = new Map<string, Store>(),
  ) {}

  incr(key: string, callback: Callback, timeWindow: number, max: number): void {
    this.inner.incr(key, this.guard ? guarded(callback) : callback, timeWindow, max);
  }

  /** The plugin's non-counting check (`{ increment: false }`). */
  read(key: string, callback: Callback, timeWindow: number, max: number): void {
    this.inner.read(key, this.guard ? guarded(callback) : callback, timeWindow, max);
  }

  child(routeOptions: RouteOptions): Store {
    const group = (routeOptions as { groupId?: unknown }).groupId;
    if (typeof group !== 'string')
      return new HushStore(this.inner.child(routeOptions) as Store, this.guard, this.groups);
    let shared = this.groups.get(group);
    if (!shared) {
      // Named by the group, not the first route that asked: a Redis prefix every server agrees on.
      const routeInfo = { method: 'group:', url: group };
      shared = new HushStore(this.inner.child({ ...routeOptions, routeInfo } as RouteOptions) as Store, this.guard);
      this.groups.set(group, shared);
    }
    return shared;
  }
}

/** The `store` option of @fastify/rate-limit: counts in this process's memory. */
export function memoryRateLimitStore(): FastifyRateLimitStoreCtor {
  return class extends HushStore {
    constructor(options: FastifyRateLimitOptions) {
      // The plugin hands a store its global settings, these two among them.
      const { continueExceeding, exponentialBackoff } = options as RateLimitOptions;
      super(new LocalStore(continueExceeding, exponentialBackoff), false);
    }
  };
}

/** The `store` option of @fastify/rate-limit: counts under `nameSpace` in `redis`. */
export function redisRateLimitStore(redis: Redis, nameSpace: string): FastifyRateLimitStoreCtor {
  return class extends HushStore {
    constructor(options: FastifyRateLimitOptions) {
      const { continueExceeding, exponentialBackoff } = options as RateLimitOptions;
      super(new RedisStore(continueExceeding, exponentialBackoff, redis, nameSpace), true);
    }
  };
}
