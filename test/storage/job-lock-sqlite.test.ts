/**
 * Once-only jobs on SQLite (src/db/job-lock.ts): a `job_locks` row names the
 * process that runs the job. A second run — another call in this process,
 * another process — is refused while it is held; a row left by a process
 * that died is taken over; the lock is released however the job ends.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withJobLock } from '../../src/db/job-lock.js';
import { createSite, describeRun, type HushSite, killStartedProcesses, runHush } from '../support/cli.js';

describe('job locks on SQLite', () => {
  let site: HushSite;
  let ctx: Awaited<ReturnType<HushSite['open']>>;

  beforeAll(async () => {
    site = await createSite('sqlite');
    ctx = await site.open();
  }, 60_000);

  afterAll(async () => {
    killStartedProcesses();
    await ctx?.close();
    await site?.cleanup();
  });

  const locks = () => ctx.db.selectFrom('job_locks').selectAll().execute();

  it('a job held by one call is refused to a second, on another connection too, and runs once released', async () => {
    const other = await site.open();
    try {
      let release!: () => void;
      const holding = withJobLock(
        ctx,
        'sweep',
        () => new Promise<string>((resolve) => (release = () => resolve('first'))),
      );
      await expect.poll(locks).toHaveLength(1);
      let ran = 0;
      expect(await withJobLock(ctx, 'sweep', async () => ++ran)).toEqual({ ran: false });
      expect(await withJobLock(other, 'sweep', async () => ++ran)).toEqual({ ran: false });
      // Another job's name is not held.
      expect(await withJobLock(other, 'rotate', async () => ++ran)).toEqual({ ran: true, value: 1 });
      release();
      expect(await holding).toEqual({ ran: true, value: 'first' });
      expect(await locks()).toEqual([]);
      expect(await withJobLock(other, 'sweep', async () => ++ran)).toEqual({ ran: true, value: 2 });
    } finally {
      await other.close();
    }
  });

  it('a job that throws releases its lock', async () => {
    await expect(
      withJobLock(ctx, 'sweep', async () => {
        throw new Error('failed half-way');
      }),
    ).rejects.toThrow('failed half-way');
    expect(await locks()).toEqual([]);
    expect(await withJobLock(ctx, 'sweep', async () => 'again')).toEqual({ ran: true, value: 'again' });
  });

  it('a lock left by a process that died is taken over', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid as number;
    await ctx.db
      .insertInto('job_locks')
      .values({ job: 'sweep', holder: 'gone', pid: dead, acquired_at: '2026-01-01T00:00:00.000Z' })
      .execute();
    expect(await withJobLock(ctx, 'sweep', async () => 'taken over')).toEqual({ ran: true, value: 'taken over' });
    expect(await locks()).toEqual([]);
  });

  it('`hush keys rotate-root` (or `retire-root`) while another process holds the root-key lock: exit 1, key file unchanged', async () => {
    const keyFile = path.join(site.dataDir, 'master.key');
    const before = readFileSync(keyFile, 'utf8');
    let release!: () => void;
    const holding = withJobLock(ctx, 'root-keys', () => new Promise<void>((resolve) => (release = resolve)));
    await expect.poll(locks).toHaveLength(1);
    try {
      for (const args of [
        ['keys', 'rotate-root'],
        ['keys', 'retire-root'],
      ]) {
        const busy = await runHush(args, site.env);
        expect(busy.code, describeRun(busy)).toBe(1);
        expect(busy.stderr).toMatch(/another `hush keys rotate-root` or `retire-root` is running/);
        expect(readFileSync(keyFile, 'utf8')).toBe(before);
      }
    } finally {
      release();
      await holding;
    }
    const ran = await runHush(['keys', 'rotate-root'], site.env);
    expect(ran.code, describeRun(ran)).toBe(0);
    expect(readFileSync(keyFile, 'utf8')).not.toBe(before);
  }, 60_000);
});
