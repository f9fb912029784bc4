/**
 * Hush benchmark runner.
 *
 *   npx tsx bench/run.ts [scenario …] [options]
 *
 * Runs the scenarios (all but the opt-in ones by default), prints progress to stderr, writes
 * docs/PERFORMANCE.md and exits 1 when a scenario's target is missed.
 *
 * Options:
 *   --db sqlite,postgres   engines (default both; PostgreSQL is skipped with a
 *                          notice when unreachable, unless --require-postgres or CI=true)
 *   --sizes 1000,10000     data sizes for scenarios that have them
 *   --requests 300         measured requests per repetition (default 300; the
 *                          throughput scenarios default to their own totals)
 *   --repetitions 3        repetitions, reported as their median (default 3)
 *   --warmup 300           warm-up requests per operation (default 300)
 *   --out <file>           report path (default docs/PERFORMANCE.md)
 *   --no-write             do not write the report; print it to stdout
 *   --list                 list the scenarios and exit
 *
 * HUSH_BENCH_PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres)
 * is the server where a temporary database is created.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { apiExecutor } from './api-executor.js';
import { apiSend } from './api-send.js';
import { memory, memorySoak } from './memory.js';
import { redaction } from './redaction.js';
import { scale1m } from './scale-1m.js';
import { load } from './scale-out.js';
import { secretsScale } from './secrets-scale.js';
import { runCleanups } from './support/cleanup.js';
import { type BenchDatabaseKind, PG_ADMIN_URL } from './support/databases.js';
import { machineInfo } from './support/machine.js';
import { progress } from './support/progress.js';
import { type ScenarioSection, SUITE_BUDGET_SECONDS, writePerformanceDoc } from './support/report.js';
import type { Scenario, ScenarioResult } from './support/scenario.js';

/** Every scenario, in report order. New scenarios are added here. */
const SCENARIOS: Scenario[] = [redaction, apiExecutor, secretsScale, apiSend, load, scale1m, memory, memorySoak];

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: must be a whole number, got "${raw}"`);
  return n;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      db: { type: 'string' },
      sizes: { type: 'string' },
      requests: { type: 'string' },
      repetitions: { type: 'string' },
      warmup: { type: 'string' },
      out: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      'require-postgres': { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
    },
  });
  if (values.list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.id}\t${s.title}${s.optIn ? ' (run by name only)' : ''}\n`);
    return 0;
  }
  const unknown = positionals.filter((p) => !SCENARIOS.some((s) => s.id === p));
  if (unknown.length > 0) throw new Error(`unknown scenario(s): ${unknown.join(', ')} (see --list)`);
  const selected =
    positionals.length > 0 ? SCENARIOS.filter((s) => positionals.includes(s.id)) : SCENARIOS.filter((s) => !s.optIn);

  const wanted = (values.db ?? 'sqlite,postgres').split(',').map((d) => d.trim());
  for (const d of wanted) if (d !== 'sqlite' && d !== 'postgres') throw new Error(`--db: unknown database "${d}"`);
  const machine = await machineInfo();
  const databases = [...new Set(wanted)] as BenchDatabaseKind[];
  if (databases.includes('postgres') && machine.postgres === null) {
    if (values['require-postgres'] || process.env.CI === 'true') {
      throw new Error(`PostgreSQL is not reachable at ${PG_ADMIN_URL}`);
    }
    progress(`NOTICE: PostgreSQL not reachable at ${PG_ADMIN_URL}: PostgreSQL runs are SKIPPED`);
    databases.splice(databases.indexOf('postgres'), 1);
  }
  const sizes = values.sizes?.split(',').map((s) => positiveInt('sizes', s.trim(), 0));

  const options = {
    databases,
    requests: positiveInt('requests', values.requests, 300),
    requestsGiven: values.requests !== undefined,
    repetitions: Math.max(1, positiveInt('repetitions', values.repetitions, 3)),
    warmup: positiveInt('warmup', values.warmup, 300),
    sizes,
    machine,
  };
  progress(`machine: ${machine.cpuModel} × ${machine.cores}, Node ${machine.node}; databases: ${databases.join(', ')}`);

  const sections: ScenarioSection[] = [];
  const results: { scenario: Scenario; result: ScenarioResult }[] = [];
  const timings: { id: string; seconds: number }[] = [];
  for (const scenario of selected) {
    progress(`scenario ${scenario.id}: ${scenario.title}`);
    const t0 = performance.now();
    const result = await scenario.run(options);
    const seconds = (performance.now() - t0) / 1000;
    progress(`scenario ${scenario.id}: finished in ${seconds.toFixed(0)} s`);
    sections.push({ id: scenario.id, title: scenario.title, markdown: result.markdown });
    results.push({ scenario, result });
    timings.push({ id: scenario.id, seconds });
  }
  // The whole default suite, as `npm run bench` runs it: its time is recorded (issue 7's budget).
  const wholeSuite =
    positionals.length === 0 &&
    [values.db, values.sizes, values.requests, values.repetitions, values.warmup].every((v) => v === undefined) &&
    machine.postgres !== null
      ? { date: machine.date.slice(0, 10), seconds: performance.now() / 1000, scenarios: timings }
      : undefined;
  if (wholeSuite) progress(`whole suite: ${wholeSuite.seconds.toFixed(0)} s`);

  if (values['no-write']) {
    for (const s of sections) process.stdout.write(`### ${s.title}\n\n${s.markdown}\n\n`);
  } else {
    const out = path.resolve(values.out ?? path.join(import.meta.dirname, '..', 'docs', 'PERFORMANCE.md'));
    writePerformanceDoc(out, machine, sections, wholeSuite);
    progress(`wrote ${path.relative(process.cwd(), out) || out}`);
  }

  let failed = 0;
  for (const { result } of results) {
    for (const gate of result.gates) {
      progress(`${gate.passed ? 'PASS' : 'FAIL'} ${gate.name}: ${gate.detail}`);
      if (!gate.passed) failed += 1;
    }
  }
  if (wholeSuite) {
    const within = wholeSuite.seconds < SUITE_BUDGET_SECONDS;
    progress(
      `${within ? 'PASS' : 'FAIL'} whole suite in ${wholeSuite.seconds.toFixed(0)} s (target < ${SUITE_BUDGET_SECONDS} s)`,
    );
    if (!within) failed += 1;
  }
  return failed > 0 ? 1 : 0;
}

let interrupted = false;
const stop = (signal: NodeJS.Signals) => {
  interrupted = true;
  progress(`${signal}: cleaning up`);
  void runCleanups().finally(() => process.exit(130));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

try {
  process.exitCode = await main();
} catch (error) {
  // After an interruption the in-flight request fails on the closed database: not news.
  if (!interrupted)
    process.stderr.write(`[bench] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 2;
} finally {
  await runCleanups();
}
