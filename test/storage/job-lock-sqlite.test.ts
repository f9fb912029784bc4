/**
 * Once-only jobs on SQLite (src/db/job-lock.ts): a `job_locks` row names the
 * process that runs the job. A second run — another call in this process,
 * another process — is refused while it is held; a row left by a process
 * that died, or not renewed for 30 s, is taken over; the lock is renewed
 * while the job runs and released however it ends.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Lease, LOCK_HEARTBEAT_MS, LOCK_HOST, LOCK_STALE_MS, withJobLock } from '../../src/db/job-lock.js';
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

  const lockRow = (pid: number, at: string, host = LOCK_HOST) => ({
    job: 'sweep',
    holder: 'someone',
    host,
    pid,
    acquired_at: at,
    heartbeat_at: at,
  });

  it('a lock left by a process of this machine that died is taken over at once', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid as number;
    await ctx.db.insertInto('job_locks').values(lockRow(dead, new Date().toISOString())).execute();
    expect(await withJobLock(ctx, 'sweep', async () => 'taken over')).toEqual({ ran: true, value: 'taken over' });
    expect(await locks()).toEqual([]);
  });

  it('a lock not renewed for 30 s is taken over even if its PID lives (PID 1 in a container, reused PIDs, another host)', async () => {
    const old = new Date(Date.now() - LOCK_STALE_MS - 1000).toISOString();
    for (const row of [lockRow(1, old), lockRow(process.pid, old), lockRow(1, old, 'another-host')]) {
      await ctx.db.insertInto('job_locks').values(row).execute();
      expect(await withJobLock(ctx, 'sweep', async () => 'taken over'), JSON.stringify(row)).toEqual({
        ran: true,
        value: 'taken over',
      });
      expect(await locks()).toEqual([]);
    }
    // Renewed lately by a process elsewhere (its PID means nothing here): held.
    await ctx.db
      .insertInto('job_locks')
      .values(lockRow(999_999, new Date().toISOString(), 'another-host'))
      .execute();
    expect(await withJobLock(ctx, 'sweep', async () => 'ran')).toEqual({ ran: false });
    await ctx.db.deleteFrom('job_locks').execute();
  });

  it('a running job renews its lock, and learns when it was taken over', async () => {
    let release!: () => void;
    let lease: Lease | undefined;
    const holding = withJobLock(ctx, 'sweep', (l) => {
      lease = l;
      return new Promise<void>((resolve) => (release = resolve));
    });
    await expect.poll(locks).toHaveLength(1);
    const [first] = await locks();
    await new Promise((resolve) => setTimeout(resolve, LOCK_HEARTBEAT_MS + 500));
    const [later] = await locks();
    expect(Date.parse(later?.heartbeat_at ?? '')).toBeGreaterThan(Date.parse(first?.heartbeat_at ?? ''));
    expect(lease?.lost).toBe(false);
    // Another process takes it over (as it would after this one stalled for 30 s).
    await ctx.db.updateTable('job_locks').set({ holder: 'someone else' }).where('job', '=', 'sweep').execute();
    await new Promise((resolve) => setTimeout(resolve, LOCK_HEARTBEAT_MS + 500));
    expect(lease?.lost).toBe(true);
    release();
    await holding;
    // Its end does not remove the new holder's lock.
    expect((await locks()).map((l) => l.holder)).toEqual(['someone else']);
    await ctx.db.deleteFrom('job_locks').execute();
  }, 30_000);

  it('a fresh lock naming this host name but another PID namespace is held, even if that PID is gone here', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid as number;
    const elsewhere = `${hostname()} pid:[4026531999]`;
    await ctx.db
      .insertInto('job_locks')
      .values(lockRow(dead, new Date().toISOString(), elsewhere))
      .execute();
    expect(await withJobLock(ctx, 'sweep', async () => 'ran')).toEqual({ ran: false });
    await ctx.db.deleteFrom('job_locks').execute();
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
