/**
 * The local upstream the API-block scenarios call: one child process
 * (support/upstream-process.ts) per benchmark run, shared by every scenario
 * of the run so that all of them — Hush and the baselines — talk to the very
 * same server. A separate process keeps its work off the event loop being
 * measured (it still shares the machine's cores).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { registerCleanup } from './cleanup.js';
import { progress } from './progress.js';

/** Bytes of every upstream response body. */
export const UPSTREAM_BODY_BYTES = 1024;

export interface UpstreamStats {
  /** Requests served since the upstream started. */
  served: number;
  /** CPU time (user + system) of the upstream process so far, µs. */
  cpuUs: number;
}

export interface BenchUpstream {
  /** The upstream process (for CPU accounting from /proc). */
  pid: number;
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** The URL the blocks call. */
  url: string;
  stats(): Promise<UpstreamStats>;
}

let shared: Promise<BenchUpstream> | undefined;

/** The run's upstream, started on first use and stopped when the run ends. */
export function sharedUpstream(): Promise<BenchUpstream> {
  shared ??= startUpstream();
  return shared;
}

async function startUpstream(): Promise<BenchUpstream> {
  // fork() reuses process.execArgv, i.e. tsx's loader: the child runs TypeScript too.
  const child: ChildProcess = fork(new URL('./upstream-process.ts', import.meta.url), [], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  registerCleanup(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill();
      }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const onMessage = (m: { type?: string; port?: number }) => {
      if (m.type === 'ready' && typeof m.port === 'number') {
        child.off('message', onMessage);
        resolve(m.port);
      }
    };
    child.on('message', onMessage);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the upstream process exited early (code ${code})`)));
  });
  const origin = `http://127.0.0.1:${port}`;
  progress(`upstream: ${origin} (pid ${child.pid}), ${UPSTREAM_BODY_BYTES}-byte JSON echoing Authorization`);

  let pending: Promise<UpstreamStats> = Promise.resolve({ served: 0, cpuUs: 0 });
  return {
    pid: child.pid as number,
    origin,
    url: `${origin}/echo`,
    stats() {
      // One question at a time: answers carry no id.
      pending = pending.then(
        () =>
          new Promise<UpstreamStats>((resolve) => {
            const onMessage = (m: { type?: string } & Partial<UpstreamStats>) => {
              if (m.type !== 'stats') return;
              child.off('message', onMessage);
              resolve({ served: m.served ?? 0, cpuUs: m.cpuUs ?? 0 });
            };
            child.on('message', onMessage);
            child.send({ type: 'stats' });
          }),
      );
      return pending;
    },
  };
}
