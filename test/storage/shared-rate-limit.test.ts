/**
 * Two Hush servers on one PostgreSQL, counting in Redis or — without Redis —
 * in PostgreSQL: a rate limit counted on one holds on the other (login per
 * account and IP, reveal per user).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAppContext } from '../../src/app/bootstrap.js';
import { loadConfig } from '../../src/app/config.js';
import { createLogger } from '../../src/app/logger.js';
import { buildServer } from '../../src/app/server.js';
import { prepareSetup } from '../../src/modules/auth/auth-service.js';
import { createPostgresDatabase, DATABASES } from '../support/databases.js';
import { inviteAndJoin, setupOwner } from '../support/fixtures.js';
import { PASSWORD, type TestApp, TestClient } from '../support/harness.js';
import { REDIS_URL, redisUp } from '../support/redis.js';

const pgAvailable = DATABASES.find((d) => d.kind === 'postgres')?.available ?? false;

describe.each([
  { counter: 'Redis', redis: true },
  { counter: 'PostgreSQL (no Redis)', redis: false },
])('rate limits across two servers, counted in $counter', ({ redis: withRedis }) => {
  const available = pgAvailable && (!withRedis || redisUp);
  let databaseUrl = '';
  const nodes: { app: TestApp['app']; close(): Promise<void> }[] = [];
  let drop: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    if (!available) return;
    const database = await createPostgresDatabase();
    drop = database.drop;
    databaseUrl = database.url;
    const env = {
      HUSH_DATABASE_URL: database.url,
      HUSH_MASTER_KEY: randomBytes(32).toString('base64'),
      HUSH_SETUP_TOKEN: 'test-setup-token-0123456789',
      HUSH_LOG_LEVEL: 'silent',
      ...(withRedis ? { HUSH_REDIS_URL: REDIS_URL } : {}),
      HUSH_LOGIN_LIMIT_PER_MIN: '4',
      HUSH_REVEAL_LIMIT_PER_MIN: '3',
    };
    for (let i = 0; i < 2; i++) {
      const config = loadConfig({ ...env, HUSH_DATA_DIR: `/tmp/hush-rl-${i}` });
      const ctx = await createAppContext(config, createLogger('silent'));
      const app = await buildServer(ctx);
      await app.ready();
      if (i === 0) await prepareSetup(ctx);
      nodes.push({
        app,
        close: async () => {
          await app.close();
          await ctx.close();
        },
      });
    }
  }, 60_000);
  afterAll(async () => {
    for (const n of nodes) await n.close();
    await drop?.();
  });

  it.runIf(available)('login attempts counted on one server are refused on the other', async () => {
    const email = `nobody-${randomBytes(4).toString('hex')}@example.com`;
    const [a, b] = nodes.map((n) => new TestClient(n.app)) as [TestClient, TestClient];
    for (let i = 0; i < 2; i++)
      expect((await a.post('/api/v1/auth/login', { email, password: 'wrong password!' })).status).toBe(401);
    for (let i = 0; i < 2; i++)
      expect((await b.post('/api/v1/auth/login', { email, password: 'wrong password!' })).status).toBe(401);
    const fifth = await a.post('/api/v1/auth/login', { email, password: 'wrong password!' });
    expect(fifth.status).toBe(429);
    expect(fifth.body.code).toBe('rate_limited');
    expect((await b.post('/api/v1/auth/login', { email, password: 'wrong password!' })).status).toBe(429);
  });

  /** Every key the counts are kept under. */
  async function countKeys(): Promise<string[]> {
    if (!withRedis) {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      try {
        return (await client.query<{ key: string }>('select key from rate_limit_counts')).rows.map((r) => r.key);
      } finally {
        await client.end();
      }
    }
    const redis = new Redis(REDIS_URL);
    try {
      return (await redis.keys('*')).filter((k) => k.startsWith('hush-rl:'));
    } finally {
      redis.disconnect();
    }
  }

  it.runIf(available)('what was typed into the email field (a password, say) is not in any count key', async () => {
    const typed = `Hunter2-pass-${randomBytes(6).toString('hex')}`;
    const a = new TestClient(nodes[0]?.app as TestApp['app']);
    for (const email of [typed, `${typed}@example.com`]) {
      const r = await a.post('/api/v1/auth/login', { email, password: 'wrong password!' });
      expect([401, 422], r.text).toContain(r.status);
    }
    const keys = await countKeys();
    expect(keys.some((k) => k.startsWith('hush-rl:') && k.includes('login'))).toBe(true);
    expect(keys.filter((k) => k.toLowerCase().includes(typed.toLowerCase()))).toEqual([]);
    // Nor its plain hash, which a dictionary would undo for a weak password: a keyed one.
    const plain = createHash('sha256').update(typed.toLowerCase()).digest('hex');
    expect(keys.filter((k) => k.includes(plain))).toEqual([]);
  });

  it.runIf(available)('attempts sent at once to both servers: exactly the limit gets through', async () => {
    // Each server sends the counts of one turn of its event loop to Redis as
    // one pipeline; every count is still its own atomic increment (in PostgreSQL: one upsert
    // each, serialised by the row's lock).
    const email = `burst-${randomBytes(4).toString('hex')}@example.com`;
    const [a, b] = nodes.map((n) => new TestClient(n.app)) as [TestClient, TestClient];
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        (i % 2 === 0 ? a : b).post('/api/v1/auth/login', { email, password: 'wrong password!' }),
      ),
    );
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([...Array(4).fill(401), ...Array(8).fill(429)]);
  });

  /** The first owner, set up through the first server when a test first needs one. */
  const onFirst = () => ({ client: () => new TestClient(nodes[0]?.app as TestApp['app']) }) as unknown as TestApp;
  let team: Promise<{ owner: TestClient; workspaceId: string }> | undefined;
  const ownerTeam = () => {
    team ??= setupOwner(onFirst());
    return team;
  };

  it.runIf(available)('reveals counted on one server are refused on the other', async () => {
    const { owner, workspaceId } = await ownerTeam();
    const s = await owner.post(`/api/v1/workspaces/${workspaceId}/secrets`, {
      name: 'k',
      visibility: 'masked',
      value: 'shared-limit-value',
    });
    expect(s.status, s.text).toBe(201);
    const ownerOnB = new TestClient(nodes[1]?.app as TestApp['app']);
    for (const [k, v] of owner.cookies) ownerOnB.cookies.set(k, v);
    const url = `/api/v1/workspaces/${workspaceId}/secrets/${s.body.id}/reveal`;
    expect((await owner.post(url)).status).toBe(200);
    expect((await ownerOnB.post(url)).status).toBe(200);
    expect((await owner.post(url)).status).toBe(200);
    const refused = await ownerOnB.post(url);
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBeDefined();
  });

  it.runIf(available)(
    'signing in on one server and accepting an invitation on the other spend one budget per account and IP',
    async () => {
      const { owner, workspaceId } = await ownerTeam();
      const email = `crossing-${randomBytes(4).toString('hex')}@example.com`;
      await inviteAndJoin(onFirst(), owner, workspaceId, email, 'viewer'); // 1
      const bait = await owner.post('/api/v1/workspaces', { name: 'Bait' });
      const invited = await owner.post(`/api/v1/workspaces/${bait.body.id}/invitations`, { email, role: 'viewer' });
      expect(invited.status, invited.text).toBe(201);
      const [a, b] = nodes.map((n) => new TestClient(n.app)) as [TestClient, TestClient];
      for (let i = 0; i < 2; i++)
        expect((await a.post('/api/v1/auth/login', { email, password: `login guess ${i}` })).status).toBe(401); // 2, 3
      const accept = (c: TestClient, password: string) =>
        c.post('/api/v1/invitations/accept', { token: invited.body.token, password });
      expect((await accept(b, 'accept guess 0')).status).toBe(401); // 4: the limit
      const login = await b.post('/api/v1/auth/login', { email, password: PASSWORD });
      expect(login.status, login.text).toBe(429);
      expect(login.body.code).toBe('rate_limited');
      expect((await accept(a, PASSWORD)).status).toBe(429);
    },
  );
});
