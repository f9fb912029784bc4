/**
 * `hush keys retire-root` removes a root key from the key file once no
 * workspace key is wrapped under it. A workspace key wrapped under that root
 * key by another process before `rotate-root` changed the file, but committed
 * only after retire-root's "still in use" check, must never be left under a
 * key the file no longer holds: retire-root waits for it and rewraps it.
 *
 * Real processes on PostgreSQL; each step is ordered by row locks a test
 * connection holds and by polling pg_stat_activity for the process that waits
 * on them (application_name tells the processes apart) — no sleeps.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  createSite,
  describeRun,
  type HushProcess,
  type HushServer,
  type HushSite,
  killStartedProcesses,
  readStoredSecrets,
  runHush,
  setUp,
  spawnHush,
  startServer,
  workspaceKeyVersions,
} from '../support/cli.js';
import { DATABASES } from '../support/databases.js';

const postgres = DATABASES.find((d) => d.kind === 'postgres')?.available ?? false;

const sites: HushSite[] = [];
const servers: HushServer[] = [];
const clients: pg.Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => {});
  for (const s of servers.splice(0)) await s.stop().catch(() => {});
  killStartedProcesses();
});
afterAll(async () => {
  for (const s of sites.splice(0)) await s.cleanup();
});

function activeRootKey(site: HushSite): string {
  return (JSON.parse(readFileSync(path.join(site.dataDir, 'master.key'), 'utf8')) as { active: string }).active;
}

/** The site's environment with the database connections named `name` (pg_stat_activity.application_name). */
function named(site: HushSite, name: string): Record<string, string> {
  const url = new URL(site.pgUrl as string);
  url.searchParams.set('application_name', name);
  return { ...site.env, HUSH_DATABASE_URL: url.toString() };
}

async function connect(site: HushSite): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: site.pgUrl });
  await c.connect();
  clients.push(c);
  return c;
}

/** Resolves once a connection named `name` waits on a lock; fails if `proc` ends first. */
async function waitsOnLock(admin: pg.Client, name: string, proc?: HushProcess): Promise<void> {
  let ended: string | undefined;
  void proc?.exited.then((r) => {
    ended = describeRun(r);
  });
  for (;;) {
    const { rows } = await admin.query(
      `select 1 from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'`,
      [name],
    );
    if (rows.length > 0) return;
    if (ended !== undefined) throw new Error(`${name} ended instead of waiting on a lock:\n${ended}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** What `hush doctor` says, and every stored value of the workspace read with the key file as it is now. */
async function storedState(site: HushSite, workspaceId: string) {
  const doctor = await runHush(['doctor'], site.env);
  const ctx = await site.open();
  try {
    const values = await readStoredSecrets(ctx, workspaceId).then(
      (m) => [...m.values()].map((s) => s.value).sort(),
      (error: Error) => `unreadable: ${error.message}`,
    );
    return { doctor, values, keys: await workspaceKeyVersions(ctx, workspaceId) };
  } finally {
    await ctx.close();
  }
}

describe('retire-root against workspace keys wrapped under the retiring root key', () => {
  it.runIf(postgres)(
    'PostgreSQL: a rotate-workspace whose new key version was wrapped before rotate-root is not left under a retired root key',
    async () => {
      const site = await createSite('postgres');
      sites.push(site);
      const server = await startServer(site.env);
      servers.push(server);
      const owner = await setUp(server);
      const ws = owner.workspaceId;
      for (const [name, value] of [
        ['alpha', 'alpha-value-0123'],
        ['beta', 'beta-value-4567'],
      ])
        expect((await owner.api.post(`/workspaces/${ws}/secrets`, { name, visibility: 'masked', value })).status).toBe(
          201,
        );
      await server.stop();
      servers.splice(0);
      const oldRoot = activeRootKey(site);
      const admin = await connect(site);

      // rotate-workspace wraps key version 2 under the old root key and then waits, uncommitted,
      // to switch the workspace to it (the workspace row is share-locked here).
      const wsRow = await connect(site);
      await wsRow.query('begin');
      await wsRow.query('select id from workspaces where id = $1 for share', [ws]);
      const rotateWs = spawnHush(['keys', 'rotate-workspace', ws], named(site, 'rotate-ws'));
      await waitsOnLock(admin, 'rotate-ws', rotateWs);

      // Meanwhile the root key is rotated.
      const rotateRoot = await runHush(['keys', 'rotate-root'], site.env);
      expect(rotateRoot.code, describeRun(rotateRoot)).toBe(0);
      const newRoot = activeRootKey(site);
      expect(newRoot).not.toBe(oldRoot);

      // retire-root is held at its audit event (the system chain's head is locked here): after
      // it has checked which root keys are in use, before it rewrites the key file — unless it
      // waits for the uncommitted key version first.
      const head = await connect(site);
      await head.query('begin');
      await head.query(`select seq from audit_heads where chain = 'system' for update`);
      const retire = spawnHush(['keys', 'retire-root'], named(site, 'retire'));
      await waitsOnLock(admin, 'retire', retire);

      // rotate-workspace commits version 2 and re-encrypts every value under it.
      await wsRow.query('commit');
      const rotated = await rotateWs.exited;
      // retire-root goes on.
      await head.query('commit');
      const retired = await retire.exited;

      const state = await storedState(site, ws);
      expect(state.values, `rotate-workspace:\n${describeRun(rotated)}\nretire-root:\n${describeRun(retired)}`).toEqual(
        ['alpha-value-0123', 'beta-value-4567'],
      );
      expect(state.doctor.code, describeRun(state.doctor)).toBe(0);
      expect(rotated.code, describeRun(rotated)).toBe(0);
      expect(retired.code, describeRun(retired)).toBe(0);
      expect(state.keys).toEqual([{ version: 2, rootKeyId: newRoot }]);
      expect(retired.stdout).toContain(`retired unused root keys: ${oldRoot}`);
    },
  );

  it.runIf(postgres)(
    'PostgreSQL: a workspace a server creates across rotate-root and retire-root keeps a key the file holds',
    async () => {
      const site = await createSite('postgres');
      sites.push(site);
      const server = await startServer(named(site, 'server'));
      servers.push(server);
      const owner = await setUp(server);
      const oldRoot = activeRootKey(site);
      const admin = await connect(site);

      // The server wraps the new workspace's key under the old root key, then waits, uncommitted,
      // to add its owner (the owner's user row is locked here).
      const user = await connect(site);
      await user.query('begin');
      await user.query('select id from users where id = $1 for update', [owner.userId]);
      const creating = owner.session.post('/workspaces', { name: 'Made during rotation' });
      await waitsOnLock(admin, 'server');

      const rotateRoot = await runHush(['keys', 'rotate-root'], site.env);
      expect(rotateRoot.code, describeRun(rotateRoot)).toBe(0);
      const newRoot = activeRootKey(site);
      // retire-root runs to its end, or waits for the workspace's transaction.
      const retire = spawnHush(['keys', 'retire-root'], named(site, 'retire'));
      let retireEnded = false;
      void retire.exited.then(() => {
        retireEnded = true;
      });
      for (;;) {
        const { rows } = await admin.query(
          `select 1 from pg_stat_activity where application_name = 'retire' and wait_event_type = 'Lock'`,
        );
        if (rows.length > 0 || retireEnded) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await user.query('commit');
      const created = await creating;
      expect(created.status, created.text).toBe(201);
      const retired = await retire.exited;

      // The new workspace's key is under the root key the file still holds, and it takes a secret.
      const ws = created.body.id as string;
      const ctx = await site.open();
      try {
        expect(await workspaceKeyVersions(ctx, ws), describeRun(retired)).toEqual([{ version: 1, rootKeyId: newRoot }]);
      } finally {
        await ctx.close();
      }
      const secret = await owner.session.post(`/workspaces/${ws}/secrets`, {
        name: 'gamma',
        visibility: 'masked',
        value: 'gamma-value-8901',
      });
      expect(secret.status, secret.text).toBe(201);
      const revealed = await owner.session.post(`/workspaces/${ws}/secrets/${secret.body.id}/reveal`);
      expect(revealed.body).toEqual({ value: 'gamma-value-8901' });
      const doctor = await runHush(['doctor'], site.env);
      expect(doctor.code, describeRun(doctor)).toBe(0);
      expect(retired.code, describeRun(retired)).toBe(0);
      expect(retired.stdout).toContain(`retired unused root keys: ${oldRoot}`);
    },
  );
});
