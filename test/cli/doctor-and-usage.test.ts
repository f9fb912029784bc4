/**
 * `hush doctor` as a process: ok lines on a healthy setup; FAIL and a fix
 * line for a key file others can read, a missing key file and an unreachable
 * database. And the command line itself: `--help` on every command exits 0,
 * an unknown command or a missing argument exits 2.
 */
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSite,
  describeRun,
  type HushSite,
  killStartedProcesses,
  runHush,
  setUp,
  startServer,
} from '../support/cli.js';
import { DATABASES } from '../support/databases.js';

afterAll(() => killStartedProcesses());

describe.each(DATABASES)('hush doctor on $kind', ({ kind, available }) => {
  let site: HushSite;
  let keyFile: string;

  beforeAll(async () => {
    if (!available) return;
    site = await createSite(kind);
    keyFile = path.join(site.dataDir, 'master.key');
    // A real installation: the server created key file and schema, setup made a workspace key.
    const server = await startServer(site.env);
    try {
      await setUp(server);
    } finally {
      await server.stop();
    }
  }, 60_000);
  afterAll(async () => site?.cleanup());

  it.runIf(available)('a healthy setup: exit 0 and only ok lines', async () => {
    const [plain, opened] = await Promise.all([
      runHush(['doctor'], site.env),
      runHush(['doctor'], { ...site.env, HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' }),
    ]);
    expect(plain.code, describeRun(plain)).toBe(0);
    const lines = plain.stdout.trim().split('\n');
    expect(lines).toEqual([
      'ok    configuration is valid',
      expect.stringMatching(new RegExp(`^ok    root key file ${keyFile} holds 1 key\\(s\\), active rk_[0-9a-f]{16}$`)),
      `ok    database (${kind}) is reachable`,
      'ok    database schema is up to date',
      'ok    every workspace key is wrapped by a loaded root key',
      'ok    every stored secret value has its workspace key',
      'ok    outbound: private and local addresses are blocked (no HUSH_OUTBOUND_ALLOW_CIDRS)',
      'ok    outbound: secrets are sent over https only (HUSH_SECRETS_OVER_HTTP=allowed-cidrs, no range opened)',
    ]);
    expect(plain.stderr).toBe('');
    expect(opened.code, describeRun(opened)).toBe(0);
    expect(opened.stdout).toContain('ok    outbound: these ranges are opened despite the SSRF guard: 127.0.0.0/8');
    expect(opened.stdout).toContain(
      'ok    outbound: secrets go over plain http only to the opened ranges, https elsewhere (HUSH_SECRETS_OVER_HTTP=allowed-cidrs)',
    );
  });

  it.runIf(available)('a stored value under a workspace key version that is gone: FAIL', async () => {
    const ctx = await site.open();
    const at = new Date().toISOString();
    try {
      const ws = await ctx.db.selectFrom('workspaces').select('id').executeTakeFirstOrThrow();
      await ctx.db
        .insertInto('secrets')
        .values({
          id: 'sec_orphan',
          workspace_id: ws.id,
          name: 'orphan',
          visibility: 'masked',
          description: '',
          allowed_hosts: '[]',
          hosts_pinned_at: null,
          version: 1,
          revision: 0,
          created_at: at,
          created_by: null,
          updated_at: at,
          updated_by: null,
          last_used_at: null,
          deleted_at: null,
          deleted_by: null,
        })
        .execute();
      await ctx.db
        .insertInto('secret_versions')
        .values({
          secret_id: 'sec_orphan',
          version: 1,
          workspace_id: ws.id,
          key_version: 99,
          ciphertext: Buffer.alloc(40),
          created_at: at,
          created_by: null,
        })
        .execute();
      const r = await runHush(['doctor'], site.env);
      expect(r.code, describeRun(r)).toBe(1);
      const lines = r.stdout.split('\n');
      const failed = lines.indexOf(
        'FAIL  1 stored secret value(s) are encrypted under a workspace key version that no longer exists',
      );
      expect(failed, r.stdout).toBeGreaterThan(-1);
      expect(lines[failed + 1]).toMatch(/^ {6}fix: /);
    } finally {
      await ctx.db.deleteFrom('secret_versions').where('secret_id', '=', 'sec_orphan').execute();
      await ctx.db.deleteFrom('secrets').where('id', '=', 'sec_orphan').execute();
      await ctx.close();
    }
  });

  it.runIf(available)('a key file readable by others (0644): FAIL and the chmod to run', async () => {
    chmodSync(keyFile, 0o644);
    try {
      const r = await runHush(['doctor'], site.env);
      expect(r.code, describeRun(r)).toBe(1);
      const lines = r.stdout.split('\n');
      const at = lines.indexOf(`FAIL  root key file ${keyFile} is readable by group or others`);
      expect(at, r.stdout).toBeGreaterThan(-1);
      expect(lines[at + 1]).toBe(`      fix: chmod 600 ${keyFile}`);
      expect(lines.filter((l) => l.startsWith('FAIL'))).toHaveLength(1);
    } finally {
      chmodSync(keyFile, 0o600);
    }
  });

  it.runIf(available)('Redis unreachable, or a key file that is no key: every check is still printed', async () => {
    const redisDown = await runHush(['doctor'], { ...site.env, HUSH_REDIS_URL: 'redis://127.0.0.1:1' });
    expect(redisDown.code, describeRun(redisDown)).toBe(1);
    const lines = redisDown.stdout.trim().split('\n');
    expect(lines).toContain(`ok    database (${kind}) is reachable`);
    expect(lines).toContain('ok    every workspace key is wrapped by a loaded root key');
    const at = lines.indexOf('FAIL  Redis (HUSH_REDIS_URL) is not reachable');
    expect(at, redisDown.stdout).toBeGreaterThan(-1);
    // Without Redis the limits are counted in PostgreSQL, shared by every server; only SQLite's are per process.
    expect(lines[at + 1]).toBe(
      kind === 'postgres'
        ? '      fix: start Redis, or unset HUSH_REDIS_URL (limits are then counted in PostgreSQL, shared by every server)'
        : "      fix: start Redis, or unset HUSH_REDIS_URL (limits are then counted in this server's memory)",
    );
    expect(redisDown.stderr).toBe('');

    const original = readFileSync(keyFile);
    writeFileSync(keyFile, '{}');
    try {
      const r = await runHush(['doctor'], site.env);
      expect(r.code, describeRun(r)).toBe(1);
      const out = r.stdout.trim().split('\n');
      const bad = out.findIndex((l) => l.startsWith(`FAIL  root key file ${keyFile} is unreadable`));
      expect(bad, r.stdout).toBeGreaterThan(-1);
      expect(out[bad + 1]).toMatch(/^ {6}fix: /);
      expect(out).toContain(`ok    database (${kind}) is reachable`);
      expect(r.stderr).toBe('');
    } finally {
      writeFileSync(keyFile, original);
    }
  });

  it.runIf(available)('a missing key file: FAIL and a fix line; doctor does not make a new key', async () => {
    const aside = `${keyFile}.aside`;
    renameSync(keyFile, aside);
    try {
      const r = await runHush(['doctor'], site.env);
      expect(r.code, describeRun(r)).toBe(1);
      const lines = r.stdout.split('\n');
      const at = lines.indexOf(`FAIL  root key file ${keyFile} is missing`);
      expect(at, r.stdout).toBeGreaterThan(-1);
      expect(lines[at + 1]).toMatch(/^ {6}fix: .*restore it from your key backup/);
      // A check must not change what it checks: a freshly made key would open none of the existing data.
      expect(existsSync(keyFile), 'doctor created a new root key file').toBe(false);
    } finally {
      renameSync(aside, keyFile);
    }
  });

  it.runIf(available && kind === 'postgres')('an unreachable database: FAIL and a fix line', async () => {
    const r = await runHush(['doctor'], {
      ...site.env,
      HUSH_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/hush_unreachable',
    });
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stdout).toContain('FAIL  database (postgres) is not reachable: ECONNREFUSED');
    expect(r.stdout).toContain('      fix: check HUSH_DATABASE_URL and that the server runs');
    // The other commands say the same in one line — no migration was tried, so none "failed".
    const verify = await runHush(['audit', 'verify'], {
      ...site.env,
      HUSH_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/hush_unreachable',
    });
    expect(verify.code, describeRun(verify)).toBe(1);
    expect(verify.stderr.trim().split('\n')).toEqual([
      'hush: database postgres is not reachable (connect ECONNREFUSED 127.0.0.1:1): check HUSH_DATABASE_URL and that the database runs',
    ]);
  });

  it.runIf(available)('HUSH_MASTER_KEY that serve would refuse: FAIL naming it, never its value', async () => {
    const bad = 'not-base64-at-all!!';
    const r = await runHush(['doctor'], { ...site.env, HUSH_MASTER_KEY: bad });
    expect(r.code, describeRun(r)).toBe(1);
    const lines = r.stdout.split('\n');
    const at = lines.indexOf('FAIL  HUSH_MASTER_KEY is unusable: HUSH_MASTER_KEY is not base64');
    expect(at, r.stdout).toBeGreaterThan(-1);
    expect(lines[at + 1]).toMatch(/^ {6}fix: set it to base64 32-byte keys/);
    expect(`${r.stdout}${r.stderr}`).not.toContain(bad);
    // A well-formed key that wraps none of this site's workspace keys is caught by the next check.
    const other = Buffer.alloc(32, 7).toString('base64');
    const wrong = await runHush(['doctor'], { ...site.env, HUSH_MASTER_KEY: other });
    expect(wrong.code, describeRun(wrong)).toBe(1);
    expect(wrong.stdout).toMatch(/^ok {4}root keys come from HUSH_MASTER_KEY: 1 key\(s\), active /m);
    expect(wrong.stdout).toContain('FAIL  workspace keys wrapped by root keys that are not loaded');
    expect(`${wrong.stdout}${wrong.stderr}`).not.toContain(other);
  });

  it.runIf(available)(
    'a mistyped data directory: commands refuse with one line and create nothing; doctor reports it',
    async () => {
      const typo = path.join(site.dataDir, 'typo');
      const env = { ...site.env, HUSH_DATA_DIR: typo };
      for (const args of [
        ['backup', path.join(site.dataDir, 'typo.backup.gz')],
        ['keys', 'rotate-workspace', '--all'],
        ['keys', 'rotate-root'],
        ['audit', 'verify'],
      ]) {
        const r = await runHush(args, env);
        expect(r.code, describeRun(r)).toBe(1);
        expect(r.stderr.trim().split('\n'), args.join(' ')).toEqual([
          expect.stringMatching(new RegExp(`^hush: no root key file at ${typo}/master.key: restore it`)),
        ]);
        expect(existsSync(typo), args.join(' ')).toBe(false);
        expect(existsSync(path.join(site.dataDir, 'typo.backup.gz'))).toBe(false);
      }
      const doctor = await runHush(['doctor'], env);
      expect(doctor.code, describeRun(doctor)).toBe(1);
      expect(doctor.stdout).toContain(`FAIL  root key file ${typo}/master.key is missing`);
      if (kind === 'sqlite') expect(doctor.stdout).toContain(`FAIL  no database at ${typo}/hush.db`);
      expect(existsSync(typo), 'doctor created the data directory').toBe(false);
    },
  );

  it.runIf(available && kind === 'sqlite')(
    'a key file without its database (SQLite): refused with one line, no empty database made',
    async () => {
      const elsewhere = path.join(site.dataDir, 'keys-only');
      mkdirSync(elsewhere);
      copyFileSync(keyFile, path.join(elsewhere, 'master.key'));
      const r = await runHush(['backup', path.join(elsewhere, 'b.gz')], {
        ...site.env,
        HUSH_DATA_DIR: elsewhere,
      });
      expect(r.code, describeRun(r)).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^hush: no database at ${elsewhere}/hush.db: point HUSH_DATA_DIR`));
      expect(readdirSync(elsewhere)).toEqual(['master.key']);
    },
  );

  it.runIf(available)(
    "rotate-workspace with another installation's root key: exit 1, one line, nothing changed, the right key still works",
    async () => {
      const ctx = await site.open();
      const state = async () => ({
        active: await ctx.db.selectFrom('workspaces').select(['id', 'active_key_version']).orderBy('id').execute(),
        keys: await ctx.db
          .selectFrom('workspace_keys')
          .select(['workspace_id', 'version'])
          .orderBy('version')
          .execute(),
      });
      try {
        const before = await state();
        const wrong = { ...site.env, HUSH_MASTER_KEY: Buffer.alloc(32, 9).toString('base64') };
        const r = await runHush(['keys', 'rotate-workspace', '--all'], wrong);
        expect(r.code, describeRun(r)).toBe(1);
        expect(r.stderr.trim().split('\n')).toEqual([
          expect.stringMatching(
            /^hush: workspace ws_\S+: its key version 1 cannot be opened with the loaded root keys .*nothing was changed/,
          ),
        ]);
        expect(await state()).toEqual(before);
        const right = await runHush(['keys', 'rotate-workspace', '--all'], site.env);
        expect(right.code, describeRun(right)).toBe(0);
      } finally {
        await ctx.close();
      }
    },
  );

  it.runIf(available)('rotate-workspace of a deleted workspace: exit 1, one line saying so', async () => {
    const ctx = await site.open();
    const at = '2024-01-01T00:00:00.000Z';
    try {
      await ctx.db
        .insertInto('workspaces')
        .values({
          id: 'ws_gone',
          name: 'Gone',
          secret_host_binding: 'pin-on-first-use',
          active_key_version: 1,
          created_at: at,
          updated_at: at,
          deleted_at: at,
        })
        .execute();
      const r = await runHush(['keys', 'rotate-workspace', 'ws_gone'], site.env);
      expect(r.code, describeRun(r)).toBe(1);
      expect(r.stderr.trim()).toBe('hush: workspace ws_gone is deleted: nothing to rotate');
    } finally {
      await ctx.db.deleteFrom('workspaces').where('id', '=', 'ws_gone').execute();
      await ctx.close();
    }
  });

  it.runIf(available)(
    'a database migrated by a newer Hush: doctor FAILs and says so, serve and commands too',
    async () => {
      const ctx = await site.open();
      try {
        await ctx.db
          .insertInto('hush_migrations' as never)
          .values({ name: '9999-from-the-future', timestamp: new Date().toISOString() } as never)
          .execute();
        const r = await runHush(['doctor'], site.env);
        expect(r.code, describeRun(r)).toBe(1);
        expect(r.stdout).toContain('FAIL  database was migrated by a newer Hush (9999-from-the-future)');
        // An operator who went back to an older version: told so, not "corrupted migrations".
        for (const args of [['serve'], ['audit', 'verify'], ['backup', path.join(site.dataDir, 'newer.gz')]]) {
          const refused = await runHush(args, { ...site.env, HUSH_PORT: '0' }, { timeoutMs: 30_000 });
          expect(refused.code, describeRun(refused)).toBe(1);
          expect(refused.stderr.trim().split('\n'), args.join(' ')).toEqual([
            `hush: database ${kind} was migrated by a newer Hush (9999-from-the-future): this version cannot use it — run that version or a newer one (to go back, restore a backup taken before the upgrade into an empty database)`,
          ]);
        }
      } finally {
        await ctx.db
          .deleteFrom('hush_migrations' as never)
          .where('name' as never, '=', '9999-from-the-future' as never)
          .execute();
        await ctx.close();
      }
    },
  );

  it.runIf(available && kind === 'postgres')(
    'a database that does not exist, or refuses the user: one line saying what to fix, not "migration failed"',
    async () => {
      const missing = await runHush(['audit', 'verify'], {
        ...site.env,
        HUSH_DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/hush_no_such_database',
      });
      expect(missing.code, describeRun(missing)).toBe(1);
      expect(missing.stderr.trim().split('\n')).toEqual([
        'hush: database postgres: database "hush_no_such_database" does not exist: create it first (createdb), or fix the name in HUSH_DATABASE_URL',
      ]);
      const stranger = await runHush(['audit', 'verify'], {
        ...site.env,
        HUSH_DATABASE_URL: 'postgres://hush_no_such_role@127.0.0.1:5432/postgres',
      });
      expect(stranger.code, describeRun(stranger)).toBe(1);
      expect(stranger.stderr.trim().split('\n')).toEqual([
        'hush: database postgres: role "hush_no_such_role" does not exist: check the user and password in HUSH_DATABASE_URL',
      ]);
    },
  );

  it.runIf(available)('serve on an address this machine does not have: exit 1, one line naming HUSH_HOST', async () => {
    // 192.0.2.1 is TEST-NET-1: never an address of this machine.
    const r = await runHush(['serve'], { ...site.env, HUSH_HOST: '192.0.2.1', HUSH_PORT: '0' });
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(['hush: HUSH_HOST: 192.0.2.1 is not an address of this machine']);
  });

  it.runIf(available)('bad configuration: exit 1 and one line naming the variable', async () => {
    const r = await runHush(['doctor'], { ...site.env, HUSH_PORT: 'eighty' });
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(['hush: invalid configuration: HUSH_PORT: must be a whole number']);
  });
});

describe('hush command line', () => {
  const COMMANDS = [
    [],
    ['serve'],
    ['doctor'],
    ['keys'],
    ['keys', 'rotate-root'],
    ['keys', 'rotate-workspace'],
    ['audit'],
    ['audit', 'verify'],
    ['audit', 'export'],
    ['backup'],
    ['restore'],
  ];

  it('--help works on every command: exit 0, usage on stdout', async () => {
    const results = await Promise.all(
      COMMANDS.map(async (cmd) => ({ cmd, r: await runHush([...cmd, '--help'], {}, { timeoutMs: 30_000 }) })),
    );
    for (const { cmd, r } of results) {
      expect(r.code, `hush ${cmd.join(' ')} --help\n${describeRun(r)}`).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: hush${cmd.map((c) => ` ${c}`).join('')} `));
    }
    const top = results[0]?.r.stdout ?? '';
    for (const c of ['serve', 'doctor', 'keys', 'audit', 'backup', 'restore'])
      expect(top).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    const rotateRoot = results.find((x) => x.cmd.join(' ') === 'keys rotate-root')?.r.stdout;
    expect(rotateRoot).toContain('--no-new-key');
    const exportHelp = results.find((x) => x.cmd.join(' ') === 'audit export')?.r.stdout;
    expect(exportHelp).toMatch(/--format <format>[\s\S]*--since <time>[\s\S]*--workspace <id>/);
  }, 60_000);

  it('an unknown command, an unknown option or a missing argument exits 2', async () => {
    const cases = [
      ['frobnicate'],
      ['keys', 'frobnicate'],
      ['audit', 'frobnicate'],
      ['--frobnicate'],
      ['doctor', '--frobnicate'],
      ['keys', 'rotate-workspace'],
      ['restore'],
      ['backup'],
      ['audit', 'export', '--format'],
    ];
    const results = await Promise.all(
      cases.map(async (args) => ({ args, r: await runHush(args, {}, { timeoutMs: 30_000 }) })),
    );
    for (const { args, r } of results) {
      expect(r.code, `hush ${args.join(' ')}\n${describeRun(r)}`).toBe(2);
      expect(r.stderr.trim(), `hush ${args.join(' ')}`).not.toBe('');
    }
  }, 60_000);

  it('--version prints the version of package.json; help lists serve without its catch-all argument', async () => {
    const { version } = JSON.parse(readFileSync(path.join(import.meta.dirname, '../../package.json'), 'utf8')) as {
      version: string;
    };
    for (const flag of ['--version', '-V']) {
      const r = await runHush([flag], {}, { timeoutMs: 30_000 });
      expect(r.code, describeRun(r)).toBe(0);
      expect(r.stdout).toBe(`${version}\n`);
    }
    const help = await runHush(['--help'], {}, { timeoutMs: 30_000 });
    expect(help.stdout).toMatch(/^ {2}serve {2,}Serve the API and UI/m);
    expect(help.stdout).not.toContain('unknown');
  });

  it('rotate-workspace with a workspace id and --all: exit 2, not one silently ignored', async () => {
    const r = await runHush(['keys', 'rotate-workspace', 'ws_x', '--all'], {}, { timeoutMs: 30_000 });
    expect(r.code, describeRun(r)).toBe(2);
    expect(r.stderr.trim()).toBe('hush: name a workspace id or pass --all, not both');
  });

  it('an unknown command is named as such', async () => {
    const r = await runHush(['frobnicate'], {}, { timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
  });
});
