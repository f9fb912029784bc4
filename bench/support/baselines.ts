/** Starts a baseline server (support/baseline-process.ts) as a child process. */
import { type ChildProcess, fork } from 'node:child_process';
import { registerCleanup } from './cleanup.js';

export interface BaselineProcess {
  pid: number;
  origin: string;
  /** A message to the baseline process (e.g. the list page the bare app serves on /page). */
  send(message: object): void;
  stop(): Promise<void>;
}

export async function startBaseline(mode: 'bare' | 'forwarder', args: string[] = []): Promise<BaselineProcess> {
  // fork() reuses process.execArgv (tsx's loader): the child runs TypeScript too.
  const child: ChildProcess = fork(new URL('./baseline-process.ts', import.meta.url), [mode, ...args], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const stop = registerCleanup(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill();
      }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.on('message', (m: { type?: string; port?: number }) => {
      if (m.type === 'ready' && typeof m.port === 'number') resolve(m.port);
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the ${mode} baseline exited early (code ${code})`)));
  });
  return {
    pid: child.pid as number,
    origin: `http://127.0.0.1:${port}`,
    send: (message) => {
      child.send(message);
    },
    stop,
  };
}
