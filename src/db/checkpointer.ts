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
 * Once commits come faster than `busyCommitsPerSecond`, a worker thread with
 * its own connection runs `wal_checkpoint(PASSIVE)` every `intervalMs`: it
 * never waits for or blocks a writer. Meanwhile the main connection's own
 * threshold is raised to a backstop (20,000 pages) that only a stalled worker
 * lets the WAL reach. After `idleMs` with a WAL that has not grown the worker
 * ends and the default threshold is back, so an idle server carries no extra
 * thread. Durability is unchanged: the same checkpoint with the same syncs,
 * on another thread and more often.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type SQLite from 'better-sqlite3';

/** SQLite's default `wal_autocheckpoint`, in pages. */
const MAIN_THRESHOLD = 1_000;
/** The main connection's threshold while the worker runs: a backstop only. */
const BACKSTOP_THRESHOLD = 20_000;

export interface CheckpointerOptions {
  /** Commits within one second that start the worker. */
  busyCommitsPerSecond?: number;
  /** How often the worker checkpoints. */
  intervalMs?: number;
  /** The worker ends after this long with nothing to copy. */
  idleMs?: number;
  /** Told once when the worker cannot run (the main connection's own checkpoints carry on). */
  onError?: (error: Error) => void;
}

export interface CheckpointerStats {
  running: boolean;
  /** Workers started so far. */
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
 * The worker's code, CommonJS run with `eval` (the same in tests, which run
 * TypeScript sources, and in the compiled server). It reports each
 * checkpoint that copied frames, and ends by itself once the WAL has not
 * grown for `idleMs`.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
let lastLog = -1;
let lastCopied = 0;
let quietSince = Date.now();
const stop = () => {
  clearInterval(timer);
  db.close();
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
  if (copied > 0) parentPort.postMessage({ frames: copied });
  if (log !== lastLog) quietSince = now;
  lastLog = log;
  lastCopied = done;
  if (now - quietSince >= workerData.idleMs) stop();
}, workerData.intervalMs);
`;

const driverPath = createRequire(import.meta.url).resolve('better-sqlite3');

/** `main` is the server's connection to a file database in WAL mode. */
export function createCheckpointer(main: SQLite.Database, options: CheckpointerOptions = {}): Checkpointer {
  const file = main.name;
  const busyCommits = options.busyCommitsPerSecond ?? 50;
  const intervalMs = options.intervalMs ?? 200;
  const idleMs = options.idleMs ?? 5_000;
  const stats: CheckpointerStats = { running: false, started: 0, checkpoints: 0, framesCopied: 0 };
  let worker: Worker | undefined;
  let failed = false;
  let closed = false;
  let windowStart = 0;
  let commitsInWindow = 0;

  function mainThreshold(pages: number): void {
    if (main.open) main.pragma(`wal_autocheckpoint = ${pages}`);
  }

  function start(): void {
    const w = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { file, driver: driverPath, intervalMs, idleMs },
      // A checkpoint needs next to no heap: keep the thread small.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
      stdout: false,
      stderr: false,
    });
    // It never keeps the process alive (a CLI command ends when its work does).
    w.unref();
    worker = w;
    stats.running = true;
    stats.started += 1;
    mainThreshold(BACKSTOP_THRESHOLD);
    w.on('message', (message: { frames: number }) => {
      stats.checkpoints += 1;
      stats.framesCopied += message.frames;
    });
    w.on('error', (error) => {
      // Not again: SQLite's own checkpoints on the main connection go on as before.
      failed = true;
      options.onError?.(error);
    });
    w.on('exit', () => {
      if (worker === w) {
        worker = undefined;
        stats.running = false;
        mainThreshold(MAIN_THRESHOLD);
      }
    });
  }

  return {
    noteCommit() {
      if (worker || failed || closed) return;
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
      const w = worker;
      worker = undefined;
      stats.running = false;
      if (w) {
        await w.terminate();
        mainThreshold(MAIN_THRESHOLD);
      }
    },
  };
}
