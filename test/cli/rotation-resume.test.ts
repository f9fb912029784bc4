/**
 * Workspace key rotation is resumable: `hush keys rotate-workspace` killed
 * with SIGKILL half-way through 10,000 secrets leaves every row readable
 * (old or new key), and running it again finishes the same rotation — no
 * row left under an old key version, old versions deleted, every value intact.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { secretValue, seedSecrets } from '../../bench/support/seed.js';
import {
  countRowsUnderOlderKeys,
  createSite,
  describeRun,
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

const SECRETS = 10_000;

const sites: HushSite[] = [];
afterEach(() => killStartedProcesses());
afterAll(async () => {
  for (const s of sites.splice(0)) await s.cleanup();
});

describe.each(DATABASES)('resumable workspace rotation on $kind', ({ kind, available }) => {
  it.runIf(available)(
    `SIGKILL half-way through ${SECRETS} secrets, run again: the same rotation completes and every value decrypts`,
    async () => {
      const started = Date.now();
      const site = await createSite(kind);
      sites.push(site);
      const server = await startServer(site.env);
      const owner = await setUp(server);
      await server.stop();
      const ws = owner.workspaceId;

      const ctx = await site.open();
      let killedAt: { remaining: number; ms: number } | undefined;
      try {
        const seeded = await seedSecrets(ctx, { workspaceId: ws, userId: owner.userId, from: 0, to: SECRETS });
        const rootKeyId = (await workspaceKeyVersions(ctx, ws))[0]?.rootKeyId;

        const first = spawnHush(['keys', 'rotate-workspace', ws], site.env);
        const t0 = Date.now();
        // Kill it once a quarter of the rows are re-encrypted: well inside the batch loop.
        for (;;) {
          const ws1 = await ctx.db
            .selectFrom('workspaces')
            .select('active_key_version')
            .where('id', '=', ws)
            .executeTakeFirstOrThrow();
          if (Number(ws1.active_key_version) === 2) {
            const remaining = await countRowsUnderOlderKeys(ctx, ws, 2);
            if (remaining <= SECRETS * 0.75) {
              first.child.kill('SIGKILL');
              killedAt = { remaining, ms: Date.now() - t0 };
              break;
            }
          }
          if (Date.now() - t0 > 90_000) throw new Error(`rotation made no progress:\n${first.stdout}\n${first.stderr}`);
          await new Promise((r) => setTimeout(r, 10));
        }
        const killed = await first.exited;
        expect(killed.signal, describeRun(killed)).toBe('SIGKILL');
        expect(killed.stdout).not.toContain('key version 2:');

        // Half-way: both key versions exist, rows under both, and every row still decrypts.
        const remaining = await countRowsUnderOlderKeys(ctx, ws, 2);
        expect(remaining).toBeGreaterThan(0);
        expect(remaining).toBeLessThan(SECRETS);
        expect((await workspaceKeyVersions(ctx, ws)).map((k) => k.version)).toEqual([1, 2]);
        const midway = await readStoredSecrets(ctx, ws);
        expect(new Set([...midway.values()].map((s) => s.keyVersion))).toEqual(new Set([1, 2]));

        const second = await runHush(['keys', 'rotate-workspace', ws], site.env, { timeoutMs: 120_000 });
        expect(second.code, describeRun(second)).toBe(0);
        // The unfinished rotation to version 2 is continued, not a new one to version 3.
        expect(second.stdout).toContain(`workspace ${ws} → key version 2: ${remaining} done, 0 skipped, 0 failed`);

        expect(await countRowsUnderOlderKeys(ctx, ws, 2)).toBe(0);
        expect(await workspaceKeyVersions(ctx, ws)).toEqual([{ version: 2, rootKeyId }]);
        const after = await readStoredSecrets(ctx, ws);
        expect(after.size).toBe(SECRETS);
        const wrong = seeded.filter(
          (s, i) => after.get(s.id)?.value !== secretValue(i) || after.get(s.id)?.keyVersion !== 2,
        );
        expect(wrong.slice(0, 5)).toEqual([]);

        const verify = await runHush(['audit', 'verify', '--workspace', ws], site.env);
        expect(verify.code, describeRun(verify)).toBe(0);
      } finally {
        await ctx.close();
        process.stderr.write(
          `[rotation resume, ${kind}] killed after ${killedAt?.ms} ms with ${killedAt?.remaining} of ${SECRETS} rows left; total ${Date.now() - started} ms\n`,
        );
      }
    },
    240_000,
  );
});
