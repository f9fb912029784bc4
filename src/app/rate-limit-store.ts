/**
 * Where @fastify/rate-limit counts: in memory (SQLite: one server), in Redis
 * (`HUSH_REDIS_URL`), or else, on PostgreSQL, in the database — shared by
 * every server either way. The plugin's own stores (and one of ours for
 * PostgreSQL, counting as its Redis store does), with two changes:
 *
 * - Routes whose limit names the same `groupId` count in one budget. The
 *   plugin gives every route a store of its own (a memory map per route, a
 *   Redis prefix per route) and only appends the group to the key, so by
 *   itself a group shares nothing across routes. Signing in and accepting
 *   an invitation are one group: both check an account's password.
 * - When Redis (or PostgreSQL) does not answer, a limited request is refused with 503
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
import { CompiledQuery } from 'kysely';
import type { Db } from '../db/database.js';
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
    /** Redis, PostgreSQL: their errors become 503. */
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

/** Now in ms since the Unix epoch, by the database's clock (one clock for every server). */
const DB_NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/**
 * One count, atomically (the row is locked by the upsert): the first in a
 * window starts it, `timeWindow` ms long; later ones add to it until it ends.
 * Answers the count and the ms left — what Redis's script answers.
 */
const INCR_SQL = `with now as (select ${DB_NOW_MS} as ms)
insert into rate_limit_counts as r (key, count, reset_at)
select $1, 1, now.ms + $2::bigint from now
on conflict (key) do update set
  count = case when r.reset_at <= (select ms from now) then 1 else r.count + 1 end,
  reset_at = case when r.reset_at <= (select ms from now) then excluded.reset_at else r.reset_at end
returning count, reset_at - (select ms from now) as ttl`;

const READ_SQL = `select count, reset_at - ${DB_NOW_MS} as ttl from rate_limit_counts where key = $1`;

const SWEEP_SQL = `delete from rate_limit_counts where reset_at <= ${DB_NOW_MS}`;

/** Ended windows are deleted at most this often per server (any server's sweep serves all). */
const SWEEP_INTERVAL_MS = 60_000;

type CountRow = { count: number | string; ttl: number | string };

/** The plugin's store contract, counted in PostgreSQL's `rate_limit_counts` under `prefix`. */
class PostgresStore implements Store {
  constructor(
    private readonly db: Db,
    private readonly prefix: string,
    private readonly swept: { at: number },
  ) {}

  private answer(query: CompiledQuery<CountRow>, callback: Callback): void {
    this.db.executeQuery(query).then(
      ({ rows }) => {
        const row = rows[0];
        const ttl = row ? Number(row.ttl) : 0;
        callback(null, ttl > 0 && row ? { current: Number(row.count), ttl } : { current: 0, ttl: 0 });
      },
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
    );
  }

  incr(key: string, callback: Callback, timeWindow: number): void {
    this.answer(CompiledQuery.raw(INCR_SQL, [this.prefix + key, timeWindow]), callback);
    const now = Date.now();
    if (now - this.swept.at >= SWEEP_INTERVAL_MS) {
      this.swept.at = now;
      this.db.executeQuery(CompiledQuery.raw(SWEEP_SQL)).catch(() => {}); // the next sweep tries again
    }
  }

  read(key: string, callback: Callback): void {
    this.answer(CompiledQuery.raw(READ_SQL, [this.prefix + key]), callback);
  }

  child(routeOptions: RouteOptions): Store {
    const { method, url } = (routeOptions as unknown as { routeInfo: { method: string; url: string } }).routeInfo;
    return new PostgresStore(this.db, `${this.prefix}${method}${url}-`, this.swept);
  }
}

/**
 * The `store` option of @fastify/rate-limit on PostgreSQL without Redis:
 * counts in the database, under `nameSpace`, shared by every server.
 */
export function postgresRateLimitStore(db: Db, nameSpace: string): FastifyRateLimitStoreCtor {
  const swept = { at: 0 };
  return class extends HushStore {
    constructor(options: FastifyRateLimitOptions) {
      const { continueExceeding, exponentialBackoff } = options as RateLimitOptions;
      // Neither is used by Hush; counted as the plugin would need them, they would be silently wrong.
      if (continueExceeding || exponentialBackoff)
        throw new Error('the PostgreSQL rate-limit store supports neither continueExceeding nor exponentialBackoff');
      super(new PostgresStore(db, nameSpace, swept), true);
    }
  };
}
