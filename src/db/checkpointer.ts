/**
 * SQLite WAL checkpoints off the event loop while the server is busy writing.
 *
 * With `synchronous = NORMAL` a commit only appends to the WAL; the
 * checkpoint that copies the WAL back into the database file syncs both
 * files. SQLite runs it inside whichever commit finds the WAL past
 * `wal_autocheckpoint` pages, so on a busy server one commit in a few
 * hundred blocks the event loop for those two fsyncs (measured: 17–30 ms,
 * once 130 ms, every second or so under Send load), and every request in
 * flight waits.
 *
 * Once commits come faster than `busyCommitsPerSecond`, a helper process
 * with its own connection runs `wal_checkpoint(PASSIVE)` every `intervalMs`:
 * it never waits for or blocks a writer. Meanwhile the main connection's own
 * threshold is raised to a backstop (20,000 pages) that only a stalled helper
 * lets the WAL reach. After `idleMs` with a WAL that has not grown the helper
 * ends and the default threshold is back. Durability is unchanged: the same
 * checkpoint with the same syncs, elsewhere and more often.
 *
 * A process rather than a worker thread: it shares no memory with the
 * server (whose heap holds decrypted values while they are used), it needs
 * nothing but the file's path, and when it ends all its memory goes back to
 * the system — a thread's allocations stayed in the server's malloc arenas
 * and raised the idle server's RSS by a few MiB.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import type SQLite from 'better-sqlite3';

/** SQLite's default `wal_autocheckpoint`, in pages. */
const MAIN_THRESHOLD = 1_000;
/** The main connection's threshold while the helper runs: a backstop only. */
const BACKSTOP_THRESHOLD = 20_000;

export interface CheckpointerOptions {
  /** Commits within one second that start the helper. */
  busyCommitsPerSecond?: number;
  /** How often the helper checkpoints. */
  intervalMs?: number;
  /** The helper ends after this long with nothing to copy. */
  idleMs?: number;
  /** Told once when the helper cannot run (the main connection's own checkpoints carry on). */
  onError?: (error: Error) => void;
}

export interface CheckpointerStats {
  running: boolean;
  /** The running helper's process id. */
  pid?: number;
  /** Helpers started so far. */
  started: number;
  /** Checkpoints that copied at least one frame. */
  checkpoints: number;
  /** WAL frames copied into the database file. */
  framesCopied: number;
}

export interface Checkpointer {
  /** Called after each commit on the main connection; cheap. */
  noteCommit(): void;
  stats(): CheckpointerStats;
  close(): Promise<void>;
}

/**
 * The helper's code, run by `node -e` (the same from the tests, which run
 * TypeScript sources, and from the compiled server). It reports each
 * checkpoint that copied frames, and ends by itself once the WAL has not
 * grown for `idleMs` — or at once when the server goes away.
 */
const HELPER_SOURCE = `
const settings = JSON.parse(process.env.HUSH_CHECKPOINT);
process.on('disconnect', () => process.exit(0));
const Database = require(settings.driver);
const db = new Database(settings.file, { fileMustExist: true });
let lastLog = -1;
let lastCopied = 0;
let quietSince = Date.now();
const stop = () => {
  clearInterval(timer);
  db.close();
  process.disconnect();
};
const timer = setInterval(() => {
  let row;
  try {
    row = db.pragma('wal_checkpoint(PASSIVE)')[0];
  } catch {
    return; // a passing error (busy, I/O): the next tick tries again
  }
  const log = Number(row.log);
  const done = Number(row.checkpointed);
  if (log < 0) return stop(); // not in WAL mode: nothing to do here
  const now = Date.now();
  // Both counts restart from 0 when a writer starts the WAL over.
  const copied = log < lastLog || done < lastCopied ? done : done - lastCopied;
  if (copied > 0) process.send({ frames: copied });
  if (log !== lastLog) quietSince = now;
  lastLog = log;
  lastCopied = done;
  if (now - quietSince >= settings.idleMs) stop();
}, settings.intervalMs);
`;

const driverPath = createRequire(import.meta.url).resolve('better-sqlite3');

/** `main` is the server's connection to a file database in WAL mode. */
export function createCheckpointer(main: SQLite.Database, options: CheckpointerOptions = {}): Checkpointer {
  const file = main.name;
  const busyCommits = options.busyCommitsPerSecond ?? 50;
  const intervalMs = options.intervalMs ?? 200;
  const idleMs = options.idleMs ?? 5_000;
  const stats: CheckpointerStats = { running: false, started: 0, checkpoints: 0, framesCopied: 0 };
  let helper: ChildProcess | undefined;
  let failed = false;
  let closed = false;
  let windowStart = 0;
  let commitsInWindow = 0;

  function mainThreshold(pages: number): void {
    if (main.open) main.pragma(`wal_autocheckpoint = ${pages}`);
  }

  function ended(child: ChildProcess): void {
    if (helper !== child) return;
    helper = undefined;
    stats.running = false;
    delete stats.pid;
    mainThreshold(MAIN_THRESHOLD);
  }

  function fail(child: ChildProcess, error: Error): void {
    // Not again: SQLite's own checkpoints on the main connection go on as before.
    if (!failed) options.onError?.(error);
    failed = true;
    ended(child);
  }

  function start(): void {
    const child = spawn(process.execPath, ['-e', HELPER_SOURCE], {
      // Nothing of the server's environment (its master key least of all).
      env: { HUSH_CHECKPOINT: JSON.stringify({ file, driver: driverPath, intervalMs, idleMs }) },
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    // It never keeps the server's process alive (a CLI command ends when its work does).
    child.unref();
    child.channel?.unref();
    helper = child;
    stats.running = true;
    if (child.pid !== undefined) stats.pid = child.pid;
    stats.started += 1;
    mainThreshold(BACKSTOP_THRESHOLD);
    child.on('message', (message: { frames: number }) => {
      stats.checkpoints += 1;
      stats.framesCopied += message.frames;
    });
    child.on('error', (error) => fail(child, error));
    child.on('exit', (code, signal) => {
      if (code === 0 || closed) ended(child);
      else fail(child, new Error(`the checkpoint process ended with ${signal ?? `exit code ${code}`}`));
    });
  }

  return {
    noteCommit() {
      if (helper || failed || closed) return;
      const now = Date.now();
      if (now - windowStart >= 1_000) {
        windowStart = now;
        commitsInWindow = 0;
      }
      commitsInWindow += 1;
      if (commitsInWindow >= busyCommits) start();
    },
    stats: () => ({ ...stats }),
    async close() {
      closed = true;
      const child = helper;
      if (!child) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      // Disconnecting ends it (between two checkpoints); a kill if it does not.
      if (child.connected) child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
      await exited;
      clearTimeout(timer);
      ended(child);
    },
  };
}
