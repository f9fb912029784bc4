/**
 * The load generator, run as a child process by support/loadgen.ts so that
 * it never shares an event loop with a server under test. HTTP load is
 * autocannon (as a library): a fixed number of keep-alive connections, one
 * request in flight on each (closed loop), for a fixed time. Every answer is
 * checked against the job's expectations; the first wrong answer stops the
 * run and is reported. The PostgreSQL point-read baseline is a pg pool
 * driven by the same number of closed loops.
 *
 * Jobs arrive as IPC messages (plain data: no functions cross the process
 * boundary); results go back the same way.
 */
import autocannon from 'autocannon';
import pg from 'pg';
import type { HttpCheck, HttpJob, JobResult, LoadJob, PgJob } from './loadgen.js';

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

class Latencies {
  private data = new Float64Array(1 << 16);
  length = 0;
  push(ms: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = ms;
  }
  sorted(): Float64Array {
    return this.data.slice(0, this.length).sort();
  }
}

/** Why `body` is not the expected answer, or null when it is. */
function checkAnswer(check: HttpCheck, status: number, body: string, expected: string | undefined): string | null {
  if (status !== check.status) return `HTTP ${status}, expected ${check.status}`;
  if (check.startsWith !== undefined && !body.startsWith(check.startsWith))
    return `the answer does not start with ${check.startsWith}`;
  if (check.length !== undefined && Buffer.byteLength(body) !== check.length)
    return `the answer has ${Buffer.byteLength(body)} bytes, expected ${check.length}`;
  for (const s of check.includes ?? []) if (!body.includes(s)) return `the answer lacks ${JSON.stringify(s)}`;
  for (const s of check.excludes ?? []) if (body.includes(s)) return `the answer contains ${JSON.stringify(s)}`;
  if (expected !== undefined && !body.includes(expected)) return `the answer lacks ${JSON.stringify(expected)}`;
  return null;
}

async function runHttp(job: HttpJob): Promise<JobResult> {
  const latencies = new Latencies();
  let firstError: string | null = null;
  let rotation = 0;
  const variants = job.variants ?? [];
  // The context is per connection: setupRequest writes what its answer must contain.
  type Ctx = { expected?: string };
  const request: autocannon.Request = {
    method: job.method as autocannon.Request['method'],
    path: job.path,
    headers: job.headers,
    ...(job.body !== undefined ? { body: job.body } : {}),
    ...(variants.length > 0
      ? {
          setupRequest: (req: autocannon.Request, context: object) => {
            const v = variants[rotation++ % variants.length] as { path: string; expect: string };
            (context as Ctx).expected = v.expect;
            return { ...req, path: v.path };
          },
        }
      : {}),
    onResponse: (status: number, body: string, context: object) => {
      if (firstError !== null) return;
      const expected = (context as Ctx).expected;
      const problem =
        variants.length > 0 && expected === undefined
          ? 'no expected answer was recorded for this request'
          : checkAnswer(job.check, status, body, expected);
      if (problem !== null) {
        firstError = `${job.label}: ${problem}: ${body.slice(0, 300)}`;
        instance.stop();
      }
    },
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const options: autocannon.Options = {
    // Several origins (one per server process): autocannon spreads the connections over them.
    url: job.origins as unknown as string,
    connections: job.connections,
    pipelining: 1,
    timeout: 30,
    // autocannon checks its stop flag once per sample interval (default 1 s, so a 1.5 s run
    // would last 2 s): sample every 100 ms so that a timed run ends on time.
    sampleInt: 100,
    requests: [request],
    ...(job.amount !== undefined ? { amount: job.amount } : { duration: job.seconds ?? 3 }),
  };
  let finished: (r: { error: unknown; result: autocannon.Result }) => void = () => {};
  const done = new Promise<{ error: unknown; result: autocannon.Result }>((resolve) => {
    finished = resolve;
  });
  const instance = autocannon(options, (error, result) => finished({ error, result }));
  instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
    latencies.push(responseTime);
  });
  const { error, result } = await done;
  if (error) throw error instanceof Error ? error : new Error(String(error));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  if (firstError === null && (result.errors > 0 || result.non2xx > 0)) {
    firstError = `${job.label}: ${result.errors} connection errors (${result.timeouts} timeouts), ${result.non2xx} non-2xx answers`;
  }
  const sorted = latencies.sorted();
  return {
    requests: sorted.length,
    seconds,
    reqPerSec: sorted.length / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    error: firstError,
  };
}

/**
 * One pool per database and size, kept open between jobs: its server processes then
 * live across the parent's CPU readings (a pool closed at the end of a job would take
 * their CPU time with it).
 */
const pools = new Map<string, pg.Pool>();

async function poolFor(url: string, size: number): Promise<pg.Pool> {
  const key = `${size} ${url}`;
  let pool = pools.get(key);
  if (!pool) {
    pool = new pg.Pool({ connectionString: url, max: size, idleTimeoutMillis: 0 });
    pool.on('error', () => {});
    pools.set(key, pool);
    // Open every connection first: connecting is not what is measured.
    const clients = await Promise.all(Array.from({ length: size }, () => (pool as pg.Pool).connect()));
    for (const c of clients) c.release();
  }
  return pool;
}

async function runPg(job: PgJob): Promise<JobResult> {
  const pool = await poolFor(job.url, job.poolSize);
  const latencies = new Latencies();
  let firstError: string | null = null;
  let rotation = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + (job.seconds ?? 3) * 1000;
  const loop = async () => {
    while (firstError === null && performance.now() < end) {
      const params = job.params[rotation++ % job.params.length] as unknown[];
      const s = performance.now();
      const res = await pool.query(job.sql, params);
      latencies.push(performance.now() - s);
      if (res.rowCount !== 1) firstError = `${job.label}: ${res.rowCount} rows for ${JSON.stringify(params)}`;
    }
  };
  await Promise.all(Array.from({ length: job.connections }, loop));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const sorted = latencies.sorted();
  return {
    requests: sorted.length,
    seconds,
    reqPerSec: sorted.length / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    error: firstError,
  };
}

process.on('message', (message: { type: 'run'; id: number; job: LoadJob }) => {
  if (message.type !== 'run') return;
  const run = message.job.kind === 'pg' ? runPg(message.job) : runHttp(message.job);
  run.then(
    (result) => process.send?.({ type: 'result', id: message.id, result }),
    (error: unknown) =>
      process.send?.({
        type: 'result',
        id: message.id,
        result: { error: error instanceof Error ? (error.stack ?? error.message) : String(error) },
      }),
  );
});
process.on('disconnect', () => {
  void Promise.all([...pools.values()].map((p) => p.end().catch(() => {}))).finally(() => process.exit(0));
});
process.send?.({ type: 'ready' });
