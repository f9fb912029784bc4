/**
 * The login limit (SECURITY.md: HUSH_LOGIN_LIMIT_PER_MIN per client IP and
 * account per minute) as a route's rate-limit config, for every route that
 * checks an account's password: signing in, and accepting an invitation
 * for an email that already has an account. The routes share one count per
 * (IP, normalised email): a password cannot be guessed through a route the
 * limit does not watch, nor with a second budget through another route that
 * checks it. The email is counted by a keyed hash (HMAC under a
 * random key this installation keeps in its database): what someone typed
 * into the email field may be their password, and the count's key is stored
 * where the counts are (Redis, or PostgreSQL's rate_limit_counts, shared by
 * every server) — a plain hash of a weak password would be looked up in a
 * dictionary by anyone reading them.
 *
 * The IP is counted as a client holds it: an IPv4 address (also when a server
 * listening on `::` sees it as `::ffff:a.b.c.d`), or an IPv6 /64 — the least
 * any host gets (a home line, a VPS), with 2^64 addresses its owner may each
 * use in turn; counted per address, every one of them was a fresh budget.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { FastifyRequest } from 'fastify';
import type { AppContext } from '../../app/context.js';
import { RateLimitedError } from '../../app/errors.js';
import { nowIso } from '../../app/ids.js';
import type { Db } from '../../db/database.js';
import { embeddedIPv4, ipv6Groups } from '../../runtime/address-guard.js';
import { normalizeEmail } from './auth-service.js';

const KEY_SETTING = 'login_limit_key';

/** The installation's login-limit key: made by the first server that needs it, read by the rest. */
async function loadKey(db: Db): Promise<Buffer> {
  await db
    .insertInto('settings')
    .values({ key: KEY_SETTING, value: randomBytes(32).toString('hex'), updated_at: nowIso() })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  const row = await db.selectFrom('settings').select('value').where('key', '=', KEY_SETTING).executeTakeFirstOrThrow();
  return Buffer.from(row.value, 'hex');
}

/** The client an IP address stands for: the IPv4 address itself, or the /64 of an IPv6 one. */
export function clientOfIp(ip: string): string {
  const bare = ip.replace(/%.*$/, ''); // an IPv6 zone (fe80::1%eth0)
  if (!isIPv6(bare)) return ip;
  const v4 = embeddedIPv4(bare);
  if (v4 !== undefined) return v4;
  return `${ipv6Groups(bare)
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

export function loginRateLimit(
  ctx: Pick<AppContext, 'config' | 'db'>,
  emailOf: (request: FastifyRequest) => Promise<string | undefined> | string | undefined,
) {
  let key: Promise<Buffer> | undefined;
  const keyed = async (email: string) => {
    key ??= loadKey(ctx.db).catch((error: unknown) => {
      key = undefined; // tried again by the next attempt
      throw error;
    });
    return createHmac('sha256', await key)
      .update(normalizeEmail(email))
      .digest('hex');
  };
  return {
    // Every route with this limit counts in one budget per (IP, account) (app/rate-limit-store.ts).
    groupId: 'login',
    max: ctx.config.loginLimitPerMin,
    timeWindow: 60_000,
    hook: 'preHandler' as const,
    keyGenerator: async (request: FastifyRequest) => {
      const email = await emailOf(request);
      return `login:${clientOfIp(request.ip)}:${email === undefined ? '' : await keyed(email)}`;
    },
    errorResponseBuilder: (_request: FastifyRequest, context: { ttl: number }) =>
      new RateLimitedError(Math.max(1, Math.ceil(context.ttl / 1000))),
  };
}
