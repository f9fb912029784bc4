/**
 * `hush backup` and `hush restore` as processes: a backup taken while a
 * server runs restores into an empty data directory (SQLite) or a fresh
 * PostgreSQL database; a server started on the result reveals every secret as
 * before and a Send request delivers the real value to the upstream. A damaged
 * file or a wrong root key is refused with one line and creates nothing.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../bench/support/ports.js';
import { openFileKeyProvider } from '../../src/crypto/root-keys.js';
import { createBackup } from '../../src/modules/backup/backup.js';
import {
  createSite,
  describeRun,
  type HushClient,
  type HushResult,
  type HushSite,
  killStartedProcesses,
  readStoredSecrets,
  runHush,
  setUp,
  startServer,
  tokenClient,
} from '../support/cli.js';
import { DATABASES, type DatabaseKindUnderTest } from '../support/databases.js';
import { addWorkspace } from '../support/migrated-before.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const SECRETS: Record<string, { visibility: 'masked' | 'restricted'; value: string }> = {
  crm_key: { visibility: 'masked', value: 'crm-live-7Hq2/xK+e=Lw0pA9' },
  sheets_token: { visibility: 'masked', value: 'ya29.sheets-Tk3mZ8-ünï-côdé' },
  zendesk_token: { visibility: 'restricted', value: 'zd_live_Rr5pQ1nB7vC3xZ9' },
};
const UPDATED = 'crm-live-v2-Lm4Nq8Ws2Ee6';
const pgAvailable = DATABASES.some((d) => d.kind === 'postgres' && d.available);

/** Whether this process may mount a small tmpfs (root on Linux: CI and development machines here). */
const canMount = (() => {
  if (process.getuid?.() !== 0) return false;
  const probe = mkdtempSync(path.join(tmpdir(), 'hush-mount-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    process.stderr.write('\n[hush tests] NOTICE: cannot mount a tmpfs here: the full-disk backup test is SKIPPED.\n');
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
})();

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  killStartedProcesses();
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function site(kind: DatabaseKindUnderTest, env: Record<string, string> = {}): Promise<HushSite> {
  const s = await createSite(kind, env);
  cleanups.push(() => s.cleanup());
  return s;
}

/** Public tables of a PostgreSQL database, and its user count (0 without a users table). */
async function pgState(url: string): Promise<{ tables: number; users: number }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const t = await c.query<{ n: number }>(
      "select count(*)::int as n from information_schema.tables where table_schema = 'public'",
    );
    const has = await c.query<{ t: string | null }>("select to_regclass('public.users')::text as t");
    const users = has.rows[0]?.t
      ? (await c.query<{ n: number }>('select count(*)::int as n from users')).rows[0]?.n
      : 0;
    return { tables: t.rows[0]?.n ?? 0, users: users ?? 0 };
  } finally {
    await c.end();
  }
}

/** A refusal: exit 1 and exactly one line on stderr, `hush: …`. */
function expectOneLineRefusal(r: HushResult, pattern: RegExp): void {
  expect(r.code, describeRun(r)).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines, describeRun(r)).toHaveLength(1);
  expect(lines[0]).toMatch(/^hush: /);
  expect(lines[0]).toMatch(pattern);
}

describe.each(DATABASES)('backup and restore on $kind', ({ kind, available }) => {
  let source: HushSite;
  let masterKey: string | undefined;
  let backupFile: string;
  let workspaceId: string;
  let token: string;
  /** Secret name → id, and what each must reveal / deliver. */
  const ids: Record<string, string> = {};
  const values: Record<string, string> = {};
  let up: Upstream;

  /** An empty target: a new data dir (SQLite) or database (PostgreSQL), with the source's root key unless told. */
  async function target(key: 'same' | 'other' | 'none'): Promise<HushSite> {
    if (kind === 'postgres') {
      const env: Record<string, string> =
        key === 'none' ? {} : { HUSH_MASTER_KEY: key === 'same' ? (masterKey as string) : randomKey() };
      return site('postgres', env);
    }
    const t = await site('sqlite');
    const file = path.join(t.dataDir, 'master.key');
    if (key === 'same') copyFileSync(path.join(source.dataDir, 'master.key'), file);
    if (key === 'other') openFileKeyProvider(file);
    return t;
  }

  /**
   * Nothing was written to the target: its data directory holds what it held
   * (the key file for SQLite, nothing for PostgreSQL, whose key is in the
   * environment) and its database has no table at all.
   */
  async function expectUntouched(t: HushSite, key: 'same' | 'other' | 'none'): Promise<void> {
    expect(readdirSync(t.dataDir)).toEqual(kind === 'sqlite' && key !== 'none' ? ['master.key'] : []);
    if (kind === 'postgres') expect(await pgState(t.pgUrl as string)).toEqual({ tables: 0, users: 0 });
  }

  beforeAll(async () => {
    if (!available) return;
    up = await startUpstream();
    masterKey = kind === 'postgres' ? randomKey() : undefined;
    source = await site(kind, masterKey ? { HUSH_MASTER_KEY: masterKey } : {});
    const server = await startServer(source.env);
    try {
      const owner = await setUp(server);
      workspaceId = owner.workspaceId;
      token = owner.token;
      const base = `/workspaces/${workspaceId}/secrets`;
      for (const [name, s] of Object.entries(SECRETS)) {
        const r = await owner.api.post(base, { name, ...s });
        expect(r.status, r.text).toBe(201);
        ids[name] = r.body.id;
        values[name] = s.value;
      }
      // Text of 2–4 UTF-8 bytes per character, enough that the backup's chunks split characters.
      for (let i = 0; i < 40; i++) {
        const v = await owner.api.post(`/workspaces/${workspaceId}/variables`, {
          name: `wide_${i}`,
          type: 'text',
          testValue: `é€😀${i}`.repeat(400),
        });
        expect(v.status, v.text).toBe(201);
      }
      // Some history: a second version, and a rotated workspace key (versions 1 and 2 are gone/kept as used).
      expect((await owner.api.patch(`${base}/${ids.crm_key}`, { value: UPDATED })).status).toBe(200);
      values.crm_key = UPDATED;
      const rotate = await runHush(['keys', 'rotate-workspace', workspaceId], source.env);
      expect(rotate.code, describeRun(rotate)).toBe(0);
      mkdirSync(path.join(source.dataDir, 'backups'));
      backupFile = path.join(source.dataDir, 'backups', 'hush.backup.gz');
      // Taken while the server runs.
      const b = await runHush(['backup', backupFile], source.env);
      expect(b.code, describeRun(b)).toBe(0);
      expect(b.stdout).toMatch(
        new RegExp(
          `^backup written to ${backupFile}: \\d+ rows, sha256 [0-9a-f]{64} \\(ciphertext only; keep the root key separately\\)\\n$`,
        ),
      );
    } finally {
      await server.stop();
    }
  }, 90_000);

  afterAll(async () => {
    await up?.close();
  });

  it.runIf(available)('the backup is gzip JSON lines, owner-only, ciphertext only, with header and trailer', () => {
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);
    expect(existsSync(`${backupFile}.partial`)).toBe(false);
    const text = gunzipSync(readFileSync(backupFile)).toString('utf8');
    const lines = text.trim().split('\n');
    const header = JSON.parse(lines[0] ?? '{}');
    expect(header).toMatchObject({ format: 'hush-backup', version: 1, database: kind });
    expect(header.rootKeyIds).toEqual([expect.stringMatching(/^rk_[0-9a-f]{16}$/)]);
    const trailer = JSON.parse(lines.at(-1) ?? '{}');
    expect(trailer).toMatchObject({ trailer: true, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(trailer.counts.secrets).toBe(3);
    expect(trailer.counts.sessions).toBeUndefined();
    for (const value of [...Object.values(SECRETS).map((s) => s.value), UPDATED]) {
      expect(text).not.toContain(value);
      expect(text).not.toContain(Buffer.from(value).toString('base64'));
    }
  });

  it.runIf(available)(
    'restored into an empty target and served: every secret reveals as before, Send delivers the real value',
    async () => {
      const t = await target('same');
      const r = await runHush(['restore', backupFile], t.env);
      expect(r.code, describeRun(r)).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^restored \\d+ rows from ${backupFile}\\n$`));
      if (kind === 'sqlite') expect(statSync(path.join(t.dataDir, 'hush.db')).mode & 0o777).toBe(0o600);

      const server = await startServer({ ...t.env, HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' });
      try {
        // The API token was restored with its user; sessions were not.
        const api: HushClient = tokenClient(server.origin, token);
        const list = await api.get(`/workspaces/${workspaceId}/secrets`);
        expect(list.status, list.text).toBe(200);
        expect(list.body.items.map((s: { name: string }) => s.name).sort()).toEqual(Object.keys(SECRETS).sort());
        for (const name of ['crm_key', 'sheets_token']) {
          const rev = await api.post(`/workspaces/${workspaceId}/secrets/${ids[name]}/reveal`);
          expect(rev.status, rev.text).toBe(200);
          expect(rev.body.value).toBe(values[name]);
        }
        const restricted = await api.post(`/workspaces/${workspaceId}/secrets/${ids.zendesk_token}/reveal`);
        expect(restricted.status).toBe(403);

        up.handle((_req, res) => res.end('{"ok":true}'));
        const before = up.received.length;
        const send = await api.post(`/workspaces/${workspaceId}/blocks/send`, {
          block: {
            id: 'call',
            type: 'api',
            method: 'POST',
            url: `${up.url}/restored`,
            headers: [
              { key: 'Authorization', value: 'Bearer {{secret:zendesk_token}}' },
              { key: 'X-Crm-Key', value: '{{secret:crm_key}}' },
            ],
            body: { mode: 'none' },
          },
          variables: {},
        });
        expect(send.status, send.text).toBe(200);
        expect(send.body.ok, send.text).toBe(true);
        expect(up.received.length).toBe(before + 1);
        const got = up.received.at(-1);
        expect(got?.url).toBe('/restored');
        expect(got?.headers.authorization).toBe(`Bearer ${values.zendesk_token}`);
        expect(got?.headers['x-crm-key']).toBe(values.crm_key);
        expect(send.text).not.toContain(values.zendesk_token);
        expect(send.body.request.headers.authorization).toBe('Bearer [secret:zendesk_token]');
      } finally {
        await server.stop();
      }

      const [verify, again] = await Promise.all([
        runHush(['audit', 'verify'], t.env),
        runHush(['restore', backupFile], t.env),
      ]);
      expect(verify.code, describeRun(verify)).toBe(0);
      expect(verify.stdout).toContain(`ok      ${workspaceId}:`);
      // A second restore into the now populated target is refused and changes nothing.
      expectOneLineRefusal(again, /empty database/);
      const ctx = await t.open();
      try {
        expect((await ctx.db.selectFrom('users').select('id').execute()).length).toBe(1);
        expect((await ctx.db.selectFrom('secrets').select('id').execute()).length).toBe(3);
      } finally {
        await ctx.close();
      }
    },
    90_000,
  );

  it.runIf(available)(
    'a flipped byte, a truncated file or an edited row: exit 1, one line, nothing created',
    async () => {
      const bytes = readFileSync(backupFile);
      const flipped = Buffer.from(bytes);
      const middle = Math.floor(flipped.length / 2);
      flipped[middle] = (flipped[middle] ?? 0) ^ 0xff;
      const edited = gzipSync(Buffer.from(gunzipSync(bytes).toString('utf8').replace('"crm_key"', '"crm_kez"')));
      const files = {
        flipped: flipped,
        truncated: bytes.subarray(0, Math.floor(bytes.length / 2)),
        edited,
        empty: Buffer.alloc(0),
      };
      const cases = await Promise.all(
        Object.entries(files).map(async ([name, content]) => {
          const t = await target('same');
          const file = path.join(source.dataDir, 'backups', `${name}.gz`);
          writeFileSync(file, content);
          return { name, t, r: await runHush(['restore', file], t.env) };
        }),
      );
      for (const { name, t, r } of cases) {
        expectOneLineRefusal(r, name === 'edited' ? /fails its checksum/ : /damaged|incomplete|not a readable/);
        await expectUntouched(t, 'same');
      }
    },
    60_000,
  );

  it.runIf(available)(
    'a hand-edited backup whose checksum was recomputed, but whose lines are malformed: exit 1, one line, nothing created',
    async () => {
      /** The backup with `edit` applied to its lines, and its trailer's checksum made to match again. */
      const reforged = (edit: (lines: string[]) => string[]) => {
        const lines = gunzipSync(readFileSync(backupFile)).toString('utf8').trim().split('\n');
        const trailer = JSON.parse(lines.pop() ?? '{}');
        const body = edit(lines);
        const sha256 = createHash('sha256')
          .update(body.map((l) => `${l}\n`).join(''))
          .digest('hex');
        const counts = JSON.parse(JSON.stringify(trailer.counts));
        return gzipSync(`${[...body, JSON.stringify({ ...trailer, counts, sha256 })].join('\n')}\n`);
      };
      const withoutKeys = (lines: string[]) => {
        const header = JSON.parse(lines[0] ?? '{}');
        delete header.rootKeyIds;
        return [JSON.stringify(header), ...lines.slice(1)];
      };
      const nullRow = (lines: string[]) => [lines[0] ?? '', 'null', ...lines.slice(2)];
      const newer = (lines: string[]) => {
        const header = JSON.parse(lines[0] ?? '{}');
        header.migrations.push('9999-from-the-future');
        return [JSON.stringify(header), ...lines.slice(1)];
      };
      for (const [name, edit, reason] of [
        ['no-key-ids', withoutKeys, /header is malformed/],
        ['null-row', nullRow, /not a JSON object/],
        // A newer Hush's backup: refused before a database is made for it.
        ['newer', newer, /comes from a newer Hush \(schema 9999-from-the-future\): upgrade first/],
      ] as const) {
        const t = await target('same');
        const file = path.join(source.dataDir, 'backups', `${name}.gz`);
        writeFileSync(file, reforged(edit));
        expectOneLineRefusal(await runHush(['restore', file], t.env), reason);
        await expectUntouched(t, 'same');
      }
    },
    60_000,
  );

  it.runIf(available && kind === 'sqlite')(
    'a root key file that is no key: exit 1, one line, no stack trace',
    async () => {
      const t = await target('none');
      writeFileSync(path.join(t.dataDir, 'master.key'), 'garbage');
      const r = await runHush(['restore', backupFile], t.env);
      expectOneLineRefusal(r, /key/);
    },
  );

  it.runIf(available)(
    'a different root key, or none: exit 1, one line, nothing created',
    async () => {
      const other = await target('other');
      const none = await target('none');
      const [wrong, missing] = await Promise.all([
        runHush(['restore', backupFile], other.env),
        runHush(['restore', backupFile], none.env),
      ]);
      expectOneLineRefusal(wrong, /root key rk_[0-9a-f]{16} that protects this backup is not loaded/);
      await expectUntouched(other, 'other');
      // Neither HUSH_MASTER_KEY nor a key file: refused before a new key file or anything else is made.
      expectOneLineRefusal(missing, /no root key file at/);
      await expectUntouched(none, 'none');
    },
    60_000,
  );

  it.runIf(available)(
    'a target that already has an audit trail (a failed sign-in) is refused with one line, its data untouched',
    async () => {
      const used = await target('same');
      const server = await startServer(used.env);
      try {
        const r = await fetch(`${server.origin}/api/v1/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ email: 'nobody@example.com', password: 'not the password' }),
        });
        expect(r.status).toBe(401);
      } finally {
        await server.stop();
      }
      const refused = await runHush(['restore', backupFile], used.env);
      expectOneLineRefusal(refused, /restore needs an empty database: this one already has an audit trail/);
      const ctx = await used.open();
      try {
        expect(await ctx.db.selectFrom('users').select('id').execute()).toEqual([]);
        expect((await ctx.db.selectFrom('audit_events').select('action').execute()).map((e) => e.action)).toEqual([
          'auth.login_failed',
        ]);
      } finally {
        await ctx.close();
      }
    },
    60_000,
  );

  it.runIf(available)(
    'a stale .partial (world-readable, or a link elsewhere) and an old backup still give an owner-only backup; the stale file is neither written nor followed',
    async () => {
      const dir = path.join(source.dataDir, 'stale');
      mkdirSync(dir);
      const readable = path.join(dir, 'readable.backup.gz');
      writeFileSync(`${readable}.partial`, 'left by an interrupted run');
      chmodSync(`${readable}.partial`, 0o644);
      const linked = path.join(dir, 'linked.backup.gz');
      const elsewhere = path.join(dir, 'elsewhere.txt');
      writeFileSync(elsewhere, 'not to be written through a link');
      chmodSync(elsewhere, 0o644);
      symlinkSync(elsewhere, `${linked}.partial`);
      const previous = path.join(dir, 'previous.backup.gz');
      writeFileSync(previous, 'an older backup');
      chmodSync(previous, 0o644);
      for (const file of [readable, linked, previous]) {
        const r = await runHush(['backup', file], source.env);
        expect(r.code, describeRun(r)).toBe(0);
        expect(statSync(file).mode & 0o777, file).toBe(0o600);
        expect(gunzipSync(readFileSync(file)).toString('utf8')).toMatch(/^\{"format":"hush-backup"/);
      }
      expect(readFileSync(`${readable}.partial`, 'utf8')).toBe('left by an interrupted run');
      expect(readFileSync(elsewhere, 'utf8')).toBe('not to be written through a link');
      expect(statSync(elsewhere).mode & 0o777).toBe(0o644);
      // Nothing of the runs themselves is left beside the backups.
      expect(readdirSync(dir).sort()).toEqual(
        [
          'elsewhere.txt',
          'linked.backup.gz',
          'linked.backup.gz.partial',
          'previous.backup.gz',
          'readable.backup.gz',
          'readable.backup.gz.partial',
        ].sort(),
      );
    },
  );

  it.runIf(available)('a backup, a key rotation and an audit verify do not need Redis (down: they run)', async () => {
    const closed = await freePort();
    const env = { ...source.env, HUSH_REDIS_URL: `redis://127.0.0.1:${closed}` };
    const file = path.join(source.dataDir, 'redis-down.backup.gz');
    for (const args of [
      ['backup', file],
      ['keys', 'rotate-workspace', '--all'],
      ['audit', 'verify'],
    ]) {
      const r = await runHush(args, env);
      expect(r.code, `${args.join(' ')}: ${describeRun(r)}`).toBe(0);
      expect(r.stderr).not.toContain('Redis');
    }
  });

  it.runIf(available)('two backups to one file at once both finish, and the file is a whole backup', async () => {
    const dir = path.join(source.dataDir, 'twice');
    mkdirSync(dir);
    const file = path.join(dir, 'same.backup.gz');
    const runs = await Promise.all([runHush(['backup', file], source.env), runHush(['backup', file], source.env)]);
    for (const r of runs) expect(r.code, describeRun(r)).toBe(0);
    expect(readdirSync(dir)).toEqual(['same.backup.gz']);
    const lines = gunzipSync(readFileSync(file)).toString('utf8').trim().split('\n');
    const trailer = JSON.parse(lines.at(-1) ?? '{}');
    expect(trailer.trailer).toBe(true);
    const body = lines.slice(0, -1).map((l) => `${l}\n`);
    expect(createHash('sha256').update(body.join('')).digest('hex')).toBe(trailer.sha256);
  });

  it.runIf(available)(
    'a backup never replaces the root key file, the database, a directory or a device: exit 1, one line, nothing changed',
    async () => {
      const keyFile = path.join(source.dataDir, 'master.key');
      const dbFile = path.join(source.dataDir, 'hush.db');
      const link = path.join(source.dataDir, 'key-link.gz');
      const targets: [string, RegExp][] = [
        [source.dataDir, /not a regular file/],
        ['/dev/null', /not a regular file/],
      ];
      if (kind === 'sqlite') {
        symlinkSync(keyFile, link);
        targets.push([keyFile, /root key file/], [dbFile, /the database/], [`${dbFile}-wal`, /the database/]);
        targets.push([link, /not a regular file/]);
      }
      const before = kind === 'sqlite' ? [readFileSync(keyFile), readFileSync(dbFile)] : [];
      for (const [file, reason] of targets) {
        const r = await runHush(['backup', file], source.env);
        expectOneLineRefusal(r, reason);
      }
      if (kind === 'sqlite') {
        expect(readFileSync(keyFile)).toEqual(before[0]);
        expect(readFileSync(dbFile)).toEqual(before[1]);
        expect(existsSync(`${dbFile}-wal.partial`)).toBe(false);
      }
      expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
    },
  );

  it.runIf(available)('a backup that fails half-way leaves no file behind and the old backup as it was', async () => {
    const dir = path.join(source.dataDir, 'failing');
    mkdirSync(dir);
    const file = path.join(dir, 'hush.backup.gz');
    writeFileSync(file, 'an older backup');
    const ctx = await source.open();
    try {
      const failing = createBackup(ctx, file, (table) => {
        if (table === 'secrets') throw new Error('the disk went away');
      });
      await expect(failing).rejects.toThrow('the disk went away');
    } finally {
      await ctx.close();
    }
    expect(readdirSync(dir)).toEqual(['hush.backup.gz']);
    expect(readFileSync(file, 'utf8')).toBe('an older backup');
  });

  it.runIf(available)(
    'tables longer than a page are backed up whole, each row once, and restored',
    async () => {
      const key = randomKey();
      const from = await site(kind, { HUSH_MASTER_KEY: key });
      const file = path.join(from.dataDir, 'paged.backup.gz');
      const at = '2026-01-01T00:00:00.000Z';
      const ctx = await from.open();
      try {
        await addWorkspace({ db: ctx.db } as never, 'ws_paged');
        // 2,050 rows with a one-column key, 1,050 with a two-column one (pages hold 1,000).
        await ctx.db
          .insertInto('settings')
          .values(Array.from({ length: 2_050 }, (_, i) => ({ key: `paged:${i}`, value: 'v', updated_at: at })))
          .execute();
        for (let i = 0; i < 1_050; i += 350) {
          await ctx.db
            .insertInto('variable_names')
            .values(
              Array.from({ length: 350 }, (_, j) => ({
                workspace_id: 'ws_paged',
                name_lower: `name_${i + j}`,
                owner_kind: 'variable' as const,
                owner_id: `var_${i + j}`,
              })),
            )
            .execute();
        }
        const r = await createBackup(ctx, file);
        expect(r.counts.variable_names).toBe(1_050);
        expect(r.counts.settings).toBeGreaterThanOrEqual(2_050);
      } finally {
        await ctx.close();
      }
      const text = gunzipSync(readFileSync(file)).toString('utf8');
      const keys = text.split('\n').filter((l) => l.includes('"paged:'));
      expect(new Set(keys).size).toBe(2_050);
      expect(keys.length).toBe(2_050);

      const into = await site(kind, { HUSH_MASTER_KEY: key });
      const restored = await runHush(['restore', file], into.env);
      expect(restored.code, describeRun(restored)).toBe(0);
      const check = await into.open();
      try {
        const names = await check.db.selectFrom('variable_names').select('name_lower').execute();
        expect(names.length).toBe(1_050);
      } finally {
        await check.close();
      }
    },
    60_000,
  );

  it.runIf(available && canMount)('a full disk: exit 1, one line naming ENOSPC, no file left', async () => {
    const disk = path.join(source.dataDir, 'full');
    mkdirSync(disk);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', disk]);
    try {
      // All but one 4 KiB page taken: the backup's first writes fit, a later one does not.
      writeFileSync(path.join(disk, 'filler'), Buffer.alloc(12 * 1024));
      const file = path.join(disk, 'hush.backup.gz');
      const r = await runHush(['backup', file], source.env);
      expectOneLineRefusal(r, new RegExp(`cannot write ${file}: ENOSPC`));
      expect(readdirSync(disk)).toEqual(['filler']);
    } finally {
      execFileSync('umount', [disk]);
    }
  });

  it.runIf(available)('a backup into a directory that does not exist: exit 1, one line, no file', async () => {
    const file = path.join(source.dataDir, 'no-such-dir', 'hush.backup.gz');
    const r = await runHush(['backup', file], source.env);
    expectOneLineRefusal(r, /no-such-dir/);
    expect(existsSync(path.dirname(file))).toBe(false);
  });

  it.runIf(available && kind === 'sqlite' && pgAvailable)('a SQLite backup restores into PostgreSQL', async () => {
    const t = await site('postgres', {
      HUSH_MASTER_KEY_FILE: path.join(source.dataDir, 'master.key'),
    });
    const r = await runHush(['restore', backupFile], t.env);
    expect(r.code, describeRun(r)).toBe(0);
    const ctx = await t.open();
    try {
      const stored = await readStoredSecrets(ctx, workspaceId);
      expect(Object.fromEntries([...stored.values()].map((s) => [s.name, s.value]))).toEqual(values);
    } finally {
      await ctx.close();
    }
  });
});

function randomKey(): string {
  return randomBytes(32).toString('base64');
}
