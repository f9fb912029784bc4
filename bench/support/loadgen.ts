/**
 * The parent side of the load generator (support/loadgen-process.ts): one
 * child process per benchmark run, kept alive between jobs, so that the
 * load never runs on the event loop of a server under test. A job is plain
 * data — origins, one request template (optionally rotating over variants
 * with what each answer must contain), the checks every answer must pass —
 * and its result comes back over IPC. A wrong answer stops the job and
 * fails the run.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { registerCleanup } from './cleanup.js';

/** What every answer of an HTTP job must satisfy. */
export interface HttpCheck {
  status: number;
  startsWith?: string;
  /** Exact body size in bytes. */
  length?: number;
  includes?: string[];
  excludes?: string[];
}

export interface HttpJob {
  kind: 'http';
  label: string;
  /** `http://127.0.0.1:PORT`, one per server process; connections are spread over them. */
  origins: string[];
  connections: number;
  /** Run for this long (default 3 s) … */
  seconds?: number;
  /** … or until this many answers. */
  amount?: number;
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Requests rotate over these paths; each answer must contain its variant's `expect`. */
  variants?: { path: string; expect: string }[];
  check: HttpCheck;
}

export interface PgJob {
  kind: 'pg';
  label: string;
  url: string;
  /** Closed loops (requests in flight). */
  connections: number;
  poolSize: number;
  seconds?: number;
  sql: string;
  /** Parameter sets, used in rotation; every query must return exactly one row. */
  params: unknown[][];
}

export type LoadJob = HttpJob | PgJob;

export interface JobResult {
  requests: number;
  seconds: number;
  reqPerSec: number;
  /** Latency percentiles, ms (every answer, nearest rank). */
  p50: number;
  p99: number;
  /** The load generator's CPU time during the job. */
  cpuSeconds: number;
  error: string | null;
}

export interface LoadGenerator {
  pid: number;
  run(job: LoadJob): Promise<JobResult>;
  close(): Promise<void>;
}

let shared: Promise<LoadGenerator> | undefined;

/** The run's load generator process, started on first use and stopped when the run ends. */
export function sharedLoadGenerator(): Promise<LoadGenerator> {
  shared ??= startLoadGenerator();
  return shared;
}

async function startLoadGenerator(): Promise<LoadGenerator> {
  // fork() reuses process.execArgv, i.e. tsx's loader: the child runs TypeScript too.
  const child: ChildProcess = fork(new URL('./loadgen-process.ts', import.meta.url), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const close = registerCleanup(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill();
      }),
  );
  await new Promise<void>((resolve, reject) => {
    const onMessage = (m: { type?: string }) => {
      if (m.type === 'ready') {
        child.off('message', onMessage);
        resolve();
      }
    };
    child.on('message', onMessage);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the load generator exited early (code ${code})`)));
  });
  let nextId = 0;
  const waiting = new Map<number, { resolve(r: JobResult): void; reject(e: Error): void }>();
  child.on('message', (m: { type?: string; id?: number; result?: JobResult }) => {
    if (m.type !== 'result' || m.id === undefined) return;
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (!w || !m.result) return;
    if (m.result.error) w.reject(new Error(m.result.error));
    else w.resolve(m.result);
  });
  child.on('exit', (code) => {
    for (const w of waiting.values()) w.reject(new Error(`the load generator exited (code ${code})`));
    waiting.clear();
  });
  return {
    pid: child.pid as number,
    run(job) {
      const id = nextId++;
      return new Promise<JobResult>((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        child.send({ type: 'run', id, job });
      });
    },
    close,
  };
}
