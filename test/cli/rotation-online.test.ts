/**
 * Key rotation is online (SPEC §3): `hush keys rotate-workspace` and then
 * `hush keys rotate-root` run as processes while a `hush serve` process
 * answers reveals and value updates for 10,000 secrets. No request may fail,
 * every secret must decrypt to what was last written, the old workspace key
 * version and the old root key must be gone, and `hush doctor` must agree.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { secretName, secretValue, seedSecrets } from '../../bench/support/seed.js';
import { rootKeyId } from '../../src/crypto/root-keys.js';
import {
  countRowsUnderOlderKeys,
  createSite,
  describeRun,
  type HushClient,
  type HushServer,
  type HushSite,
  killStartedProcesses,
  readStoredSecrets,
  runHush,
  setUp,
  startServer,
  tokenClient,
  workspaceKeyVersions,
} from '../support/cli.js';
import { DATABASES } from '../support/databases.js';

const SECRETS = 10_000;
const WORKERS = 4;

const sites: HushSite[] = [];
const servers: HushServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop().catch(() => {});
  killStartedProcesses();
});
afterAll(async () => {
  for (const s of sites.splice(0)) await s.cleanup();
});

async function newSite(kind: 'sqlite' | 'postgres', env: Record<string, string> = {}): Promise<HushSite> {
  const site = await createSite(kind, env);
  sites.push(site);
  return site;
}

async function serve(site: HushSite): Promise<HushServer> {
  const server = await startServer(site.env);
  servers.push(server);
  return server;
}

interface KeyFileDoc {
  version: number;
  active: string;
  keys: { id: string; key: string; createdAt: string }[];
}

function readKeyFile(file: string): KeyFileDoc {
  return JSON.parse(readFileSync(file, 'utf8')) as KeyFileDoc;
}

/**
 * Reveals and updates secrets through a server until stopped. Each worker owns
 * the secrets whose index ≡ worker (mod WORKERS), so it knows exactly what
 * each of them must reveal: every non-2xx answer and every wrong value is
 * recorded as a failure.
 */
class LoadLoop {
  reveals = 0;
  updates = 0;
  readonly failures: string[] = [];
  private stopped = false;
  private readonly done: Promise<unknown>;

  constructor(
    private readonly api: HushClient,
    private readonly workspaceId: string,
    private readonly secrets: { id: string; index: number }[],
    readonly expected: Map<string, string>,
  ) {
    this.done = Promise.all(Array.from({ length: WORKERS }, (_, w) => this.worker(w)));
  }

  get operations(): number {
    return this.reveals + this.updates;
  }

  private async worker(w: number): Promise<void> {
    const mine = this.secrets.filter((_, i) => i % WORKERS === w);
    const ws = `/workspaces/${this.workspaceId}/secrets`;
    for (let n = 0; !this.stopped; n++) {
      const s = mine[randomInt(mine.length)];
      if (!s) return;
      try {
        if (n % 2 === 0) {
          const r = await this.api.post(`${ws}/${s.id}/reveal`);
          this.reveals += 1;
          if (r.status !== 200) this.failures.push(`reveal ${s.id}: ${r.status} ${r.text.slice(0, 300)}`);
          else if (r.body.value !== this.expected.get(s.id))
            this.failures.push(`reveal ${s.id}: got ${r.body.value}, expected ${this.expected.get(s.id)}`);
        } else {
          const value = `${secretValue(s.index)}+w${w}n${n}`;
          const r = await this.api.patch(`${ws}/${s.id}`, { value });
          this.updates += 1;
          if (r.status !== 200) this.failures.push(`update ${s.id}: ${r.status} ${r.text.slice(0, 300)}`);
          else this.expected.set(s.id, value);
        }
      } catch (error) {
        this.failures.push(`${s.id}: ${(error as Error).message}`);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

/** The server's error log lines (pino level 50+), shortened, for failure messages. */
function errorLines(server: HushServer): string {
  return server.process.stdout
    .split('\n')
    .filter((l) => /"level":(50|60)/.test(l))
    .slice(0, 5)
    .map((l) => {
      const e = JSON.parse(l) as Record<string, unknown>;
      return JSON.stringify({ reqId: e.reqId, errName: e.errName, errCode: e.errCode, code: e.code, msg: e.msg });
    })
    .join('\n');
}

/** `workspace ws_… → key version N: D done, S skipped, F failed` → numbers. */
function parseWorkspaceRotation(stdout: string) {
  const m = /workspace (\S+) → key version (\d+): (\d+) done, (\d+) skipped, (\d+) failed/.exec(stdout);
  if (!m) throw new Error(`no rotation result line in:\n${stdout}`);
  return {
    workspaceId: m[1],
    keyVersion: Number(m[2]),
    done: Number(m[3]),
    skipped: Number(m[4]),
    failed: Number(m[5]),
  };
}

describe.each(DATABASES)('online key rotation on $kind', ({ kind, available }) => {
  it.runIf(available)(
    `${SECRETS} secrets: rotate-workspace then rotate-root while a server reveals and updates; nothing fails, every value is the last written, old keys are gone`,
    async () => {
      const timings: Record<string, number> = {};
      let t = Date.now();
      const site = await newSite(kind);
      const server = await serve(site);
      const owner = await setUp(server);
      const ws = owner.workspaceId;
      const keyFile = path.join(site.dataDir, 'master.key');
      const oldRootKey = readKeyFile(keyFile).active;

      const seedCtx = await site.open();
      const seeded = await seedSecrets(seedCtx, { workspaceId: ws, userId: owner.userId, from: 0, to: SECRETS });
      await seedCtx.close();
      timings.setupAndSeed = Date.now() - t;
      const expected = new Map(seeded.map((s, i) => [s.id, secretValue(i)]));
      expect(seeded.map((s) => s.name).slice(0, 2)).toEqual([secretName(0), secretName(1)]);

      const load = new LoadLoop(
        owner.api,
        ws,
        seeded.map((s, index) => ({ id: s.id, index })),
        expected,
      );
      try {
        // Let the load reach a steady state before rotating under it.
        while (load.operations < 50) await new Promise((r) => setTimeout(r, 20));

        t = Date.now();
        const opsBefore = load.operations;
        const rotateWs = await runHush(['keys', 'rotate-workspace', ws], site.env, { timeoutMs: 120_000 });
        timings.rotateWorkspace = Date.now() - t;
        const opsDuringWorkspace = load.operations - opsBefore;
        expect(rotateWs.code, describeRun(rotateWs)).toBe(0);
        const wsResult = parseWorkspaceRotation(rotateWs.stdout);
        expect(wsResult).toMatchObject({ workspaceId: ws, keyVersion: 2, failed: 0 });
        // Every seeded row was under version 1, plus what the load wrote before version 2 became active.
        expect(wsResult.done + wsResult.skipped).toBeGreaterThanOrEqual(SECRETS);

        t = Date.now();
        const opsBeforeRoot = load.operations;
        const rotateRoot = await runHush(['keys', 'rotate-root'], site.env);
        timings.rotateRoot = Date.now() - t;
        const opsDuringRoot = load.operations - opsBeforeRoot;
        expect(rotateRoot.code, describeRun(rotateRoot)).toBe(0);
        const newRootKey = /new active root key (rk_[0-9a-f]{16}) added/.exec(rotateRoot.stdout)?.[1];
        expect(newRootKey, rotateRoot.stdout).toBeDefined();
        expect(newRootKey).not.toBe(oldRootKey);
        expect(rotateRoot.stdout).toContain(
          `rewrapped workspace keys under ${newRootKey}: 1 done, 0 skipped, 0 failed`,
        );
        // Old root keys stay until an explicit retire: a server may still be wrapping under them.
        expect(rotateRoot.stdout).toContain(`old root keys kept: ${oldRootKey}`);
        const retire = await runHush(['keys', 'retire-root'], site.env);
        expect(retire.code, describeRun(retire)).toBe(0);
        expect(retire.stdout).toContain(`retired unused root keys: ${oldRootKey}`);

        // Keep serving a moment after both rotations, then stop the load.
        const opsAfterRoot = load.operations;
        while (load.operations < opsAfterRoot + 50) await new Promise((r) => setTimeout(r, 20));
        await load.stop();

        // Soft: the checks below still tell whether what was stored is sound.
        expect
          .soft(
            load.failures.slice(0, 5),
            `${load.failures.length} of ${load.operations} requests failed; server errors:\n${errorLines(server)}`,
          )
          .toEqual([]);
        expect(opsDuringWorkspace, 'requests answered while rotate-workspace ran').toBeGreaterThan(20);
        expect(opsDuringRoot, 'requests answered while rotate-root ran').toBeGreaterThan(5);
        expect(load.updates).toBeGreaterThan(20);

        // What is stored: every secret decrypts (with the key file as it is now) to its last written value.
        t = Date.now();
        const ctx = await site.open();
        try {
          const stored = await readStoredSecrets(ctx, ws);
          expect(stored.size).toBe(SECRETS);
          const wrong = [...stored.values()].filter((s) => s.value !== expected.get(s.id));
          expect(wrong.slice(0, 5)).toEqual([]);
          expect(new Set([...stored.values()].map((s) => s.keyVersion))).toEqual(new Set([2]));
          expect(await countRowsUnderOlderKeys(ctx, ws, 2)).toBe(0);
          expect(await workspaceKeyVersions(ctx, ws)).toEqual([{ version: 2, rootKeyId: newRootKey }]);
          const rotations = await ctx.db
            .selectFrom('audit_events')
            .select(['action', 'chain'])
            .where('action', 'in', ['keys.workspace_rotated', 'keys.root_rotated', 'keys.root_retire_checked'])
            .orderBy('at')
            .execute();
          expect(rotations).toEqual([
            { action: 'keys.workspace_rotated', chain: ws },
            { action: 'keys.root_rotated', chain: 'system' },
            { action: 'keys.root_retire_checked', chain: 'system' },
          ]);
        } finally {
          await ctx.close();
        }
        timings.verifyStored = Date.now() - t;

        // The key file now holds only the new key, still owner-only.
        const doc = readKeyFile(keyFile);
        expect(doc.active).toBe(newRootKey);
        expect(doc.keys.map((k) => k.id)).toEqual([newRootKey]);
        expect(rootKeyId(Buffer.from(doc.keys[0]?.key ?? '', 'base64'))).toBe(newRootKey);
        expect(statSync(keyFile).mode & 0o777).toBe(0o600);

        t = Date.now();
        const [doctor, verify] = await Promise.all([
          runHush(['doctor'], site.env),
          runHush(['audit', 'verify'], site.env),
        ]);
        expect(doctor.code, describeRun(doctor)).toBe(0);
        expect(doctor.stdout).toContain(`holds 1 key(s), active ${newRootKey}`);
        expect(doctor.stdout).toContain('ok    every workspace key is wrapped by a loaded root key');
        expect(doctor.stdout).not.toContain('FAIL');
        // The server and both CLI processes wrote the chains concurrently: they must still verify.
        expect(verify.code, describeRun(verify)).toBe(0);
        expect(verify.stdout).toMatch(new RegExp(`^ok +${ws}: \\d+ events$`, 'm'));

        // A server started now (new key file only) reveals what was last written.
        await server.stop();
        const again = await serve(site);
        const api = tokenClient(again.origin, owner.token);
        const sample = Array.from({ length: 100 }, () => seeded[randomInt(SECRETS)]?.id ?? '');
        const reveals = await Promise.all(
          sample.map((id) => api.post(`/workspaces/${ws}/secrets/${id}/reveal`).then((r) => ({ id, r }))),
        );
        for (const { id, r } of reveals) {
          expect(r.status, r.text).toBe(200);
          expect(r.body.value).toBe(expected.get(id));
        }
        timings.checks = Date.now() - t;
      } finally {
        await load.stop();
        process.stderr.write(
          `[rotation under load, ${kind}] ms ${JSON.stringify(timings)}; ${load.reveals} reveals, ` +
            `${load.updates} updates, ${load.failures.length} failed\n`,
        );
      }
    },
    240_000,
  );

  it.runIf(available)(
    'a server running since before rotate-root reads and writes a workspace key made under the new root key',
    async () => {
      const site = await newSite(kind);
      const server = await serve(site);
      const owner = await setUp(server);
      const ws = `/workspaces/${owner.workspaceId}`;
      const created = await owner.api.post(`${ws}/secrets`, {
        name: 'crm_token',
        visibility: 'masked',
        value: 'crm-value-1-abcdefgh',
      });
      expect(created.status, created.text).toBe(201);
      const id = created.body.id as string;
      expect((await owner.api.post(`${ws}/secrets/${id}/reveal`)).body.value).toBe('crm-value-1-abcdefgh');

      const root = await runHush(['keys', 'rotate-root'], site.env);
      expect(root.code, describeRun(root)).toBe(0);
      // Key version 2 is made (by another process) under the new root key.
      const rotateWs = await runHush(['keys', 'rotate-workspace', owner.workspaceId], site.env);
      expect(rotateWs.code, describeRun(rotateWs)).toBe(0);

      const update = await owner.api.patch(`${ws}/secrets/${id}`, { value: 'crm-value-2-abcdefgh' });
      expect.soft(update.status, update.text).toBe(200);
      const last = update.status === 200 ? 'crm-value-2-abcdefgh' : 'crm-value-1-abcdefgh';
      const reveal = await owner.api.post(`${ws}/secrets/${id}/reveal`);
      expect.soft(reveal.status, reveal.text).toBe(200);
      expect.soft(reveal.body?.value).toBe(last);

      // What is stored is sound: a restarted server reads it.
      await server.stop();
      const again = await serve(site);
      const r = await owner.api.at(again.origin).post(`${ws}/secrets/${id}/reveal`);
      expect(r.status, r.text).toBe(200);
      expect(r.body.value).toBe(last);
    },
    120_000,
  );

  it.runIf(available)(
    'a workspace created by a server running since before rotate-root is still readable after the server restarts',
    async () => {
      const site = await newSite(kind);
      const server = await serve(site);
      const owner = await setUp(server);
      const root = await runHush(['keys', 'rotate-root'], site.env);
      expect(root.code, describeRun(root)).toBe(0);

      // The running server makes a new workspace key after the rotation.
      const later = await owner.session.post('/workspaces', { name: 'Later' });
      expect(later.status, later.text).toBe(201);
      const laterWs = `/workspaces/${later.body.id}`;
      const secret = await owner.session.post(`${laterWs}/secrets`, {
        name: 'later_token',
        visibility: 'masked',
        value: 'later-value-abcdefgh',
      });
      expect(secret.status, secret.text).toBe(201);
      expect((await owner.session.post(`${laterWs}/secrets/${secret.body.id}/reveal`)).body.value).toBe(
        'later-value-abcdefgh',
      );

      // Nothing may depend on a root key that only lives in a running process's memory.
      const doctor = await runHush(['doctor'], site.env);
      expect.soft(doctor.stdout).not.toContain('FAIL');
      expect.soft(doctor.code, describeRun(doctor)).toBe(0);
      await server.stop();
      const again = await serve(site);
      // Sessions are database rows: the same cookies work on the new process.
      const r = await owner.session.at(again.origin).post(`${laterWs}/secrets/${secret.body.id}/reveal`);
      expect(r.status, r.text).toBe(200);
      expect(r.body.value).toBe('later-value-abcdefgh');
    },
    120_000,
  );

  it.runIf(available)(
    'HUSH_MASTER_KEY: put the new key first, rotate-root --no-new-key, then drop the old key',
    async () => {
      const oldKey = randomBytes(32).toString('base64');
      const newKey = randomBytes(32).toString('base64');
      const oldId = rootKeyId(Buffer.from(oldKey, 'base64'));
      const newId = rootKeyId(Buffer.from(newKey, 'base64'));
      const site = await newSite(kind, { HUSH_MASTER_KEY: oldKey });
      const server = await serve(site);
      const owner = await setUp(server);
      const ws = `/workspaces/${owner.workspaceId}`;
      const created = await owner.api.post(`${ws}/secrets`, {
        name: 'billing_key',
        visibility: 'masked',
        value: 'billing-value-abcdefgh',
      });
      expect(created.status, created.text).toBe(201);
      await server.stop();

      // Hush cannot add a key to the environment: `rotate-root` without --no-new-key, run as with
      // a key file (a scheduled job), says so and fails instead of a no-op "rotation" with exit 0.
      const asWithFile = await runHush(['keys', 'rotate-root'], site.env);
      expect(asWithFile.code, describeRun(asWithFile)).toBe(2);
      expect(asWithFile.stdout).toBe('');
      expect(asWithFile.stderr.trim().split('\n')).toEqual([
        'hush: root keys come from HUSH_MASTER_KEY, which Hush cannot change: put a new key first in it (keep the old ones after it), roll it out to every server, then run `hush keys rotate-root --no-new-key`',
      ]);

      const both = { ...site.env, HUSH_MASTER_KEY: `${newKey},${oldKey}` };
      const rotate = await runHush(['keys', 'rotate-root', '--no-new-key'], both);
      expect(rotate.code, describeRun(rotate)).toBe(0);
      expect(rotate.stdout.split('\n')[0]).toBe(`rewrapped workspace keys under ${newId}: 1 done, 0 skipped, 0 failed`);
      expect(rotate.stdout).toContain(`old root keys kept: ${oldId}`);
      const retire = await runHush(['keys', 'retire-root'], both);
      expect(retire.code, describeRun(retire)).toBe(0);
      expect(retire.stdout).toContain(`no longer used, remove from HUSH_MASTER_KEY: ${oldId}`);
      // Run again: nothing left to do.
      const rerun = await runHush(['keys', 'rotate-root', '--no-new-key'], both);
      expect(rerun.stdout).toContain(`rewrapped workspace keys under ${newId}: 0 done, 1 skipped, 0 failed`);

      const onlyNew = { ...site.env, HUSH_MASTER_KEY: newKey };
      const doctor = await runHush(['doctor'], onlyNew);
      expect(doctor.code, describeRun(doctor)).toBe(0);
      expect(doctor.stdout).toContain('ok    root keys come from HUSH_MASTER_KEY');
      const oldOnly = await runHush(['doctor'], site.env);
      expect(oldOnly.code).toBe(1);
      expect(oldOnly.stdout).toContain(`FAIL  workspace keys wrapped by root keys that are not loaded: ${newId}`);

      const again = await serve({ ...site, env: onlyNew });
      const r = await tokenClient(again.origin, owner.token).post(`${ws}/secrets/${created.body.id}/reveal`);
      expect(r.status, r.text).toBe(200);
      expect(r.body.value).toBe('billing-value-abcdefgh');
    },
    120_000,
  );
});
