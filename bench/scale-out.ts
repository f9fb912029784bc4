/**
 * Scenario "load": real `hush serve` processes under a load generator in its
 * own process (autocannon, support/loadgen-process.ts), against baselines
 * measured in the same run on the same machine, each in its own process:
 *
 *   reveal, list (page of 100)  vs a bare Fastify route (the framework's ceiling)
 *   Send request, workflow run  vs a minimal Fastify + undici forwarder (the executor's ceiling)
 *   (context)                   a plain PostgreSQL point read through a pg pool (the database's ceiling)
 *
 * on SQLite (one process) and PostgreSQL (one process, then two processes on
 * the same database with the connections spread over both). Targets (issue 7):
 * reveal and list ≥ 0.5× the bare route, Send ≥ 0.6× the forwarder, two
 * PostgreSQL processes ≥ 1.6× one on a workload that is not database-bound.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { type BaselineProcess, startBaseline } from './support/baselines.js';
import { buildHush } from './support/compiled.js';
import type { BenchDatabaseKind } from './support/databases.js';
import { hushJob, LIST_SECRETS, type OpKey, prepareSite, SECRET_NAME, type Site } from './support/hush-fixtures.js';
import {
  call,
  createSite,
  type HushProcess,
  readServerProfile,
  serverProfileFile,
  startHush,
} from './support/hush-process.js';
import { type HttpJob, type JobResult, type LoadJob, sharedLoadGenerator } from './support/loadgen.js';
import { loadAverage, loadNote, machineLine } from './support/machine.js';
import { commandLines, count, ms, table } from './support/markdown.js';
import { samplePostgresWaits } from './support/pg-waits.js';
import { type CpuGroup, type CpuUse, cpuBetween, cpuSnapshot, pidsNamed } from './support/procstat.js';
import { type ProfileSummary, profileMarkdown, sliceProfile, summarise } from './support/profile.js';
import { progress } from './support/progress.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from './support/scenario.js';
import { secretName } from './support/seed.js';
import { median, seededRandom } from './support/stats.js';
import { sharedUpstream, UPSTREAM_BODY_BYTES } from './support/upstream.js';
import { randomSecretValue } from './support/values.js';

const CONNECTIONS = 32;
/** Seconds per measured job (each operation, each repetition). */
const JOB_SECONDS = 1.5;
const WARMUP_SECONDS = 0.75;
const PROFILE_WARMUP_SECONDS = 0.5;
/**
 * Unmeasured load of the same job right before each measurement: after a
 * switch of workload (another operation, another server) a process needs a
 * moment for its JIT and heap to settle, and a short measurement would
 * mostly see that. Baselines get the same.
 */
const SETTLE_SECONDS = 0.5;
const REDIS_URL = process.env.HUSH_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Configuration maximum (HUSH_REVEAL_LIMIT_PER_MIN): the limiter must never answer 429 here. */
const REVEAL_LIMIT = '1000000';
/** Requests the PostgreSQL point read runs through (Hush's own pool size per process). */
const PG_POOL = 10;

const MIN_REVEAL_LIST = 0.5;
const MIN_SEND = 0.6;
const MIN_SCALE_OUT = 1.6;
/** Declared up front: the workload of the two-process gate (read-only: no audit write, no row lock). */
const SCALE_OUT_OP: OpKey = 'list';

/** The issue's context figures (webhook → HTTP request (bearer) → respond, against a local echo), not measured here. */
const OTHERS = [
  { name: 'n8n 1.123', ratio: 0.004 },
  { name: 'Node-RED 4.1', ratio: 0.1 },
];

type BaseKey = 'bare' | 'bare-page' | 'forwarder' | 'forwarder2' | 'pg-read';
type ConfigKey = 'sqlite-1' | 'pg-1' | 'pg-2';

const OP_LABEL: Record<OpKey, string> = {
  reveal: 'reveal (random of 100 secrets)',
  list: 'list, page of 100',
  send: 'Send request, one secret',
  run: 'workflow run, 3 blocks (API → Set Values → API)',
};
const OP_BASE: Record<OpKey, BaseKey> = { reveal: 'bare', list: 'bare', send: 'forwarder', run: 'forwarder' };
const BASE_LABEL: Record<BaseKey, string> = {
  bare: 'bare Fastify route `GET /hello` (small JSON)',
  'bare-page': 'bare Fastify route `GET /page` answering a copy of a Hush list page (info)',
  forwarder: 'Fastify + undici forwarder, 1 upstream call',
  forwarder2: 'Fastify + undici forwarder, 2 upstream calls in a row (info)',
  'pg-read': `PostgreSQL point read \`SELECT … WHERE id = $1\` (pg pool of ${PG_POOL})`,
};
const CONFIG_LABEL: Record<ConfigKey, string> = {
  'sqlite-1': 'SQLite, 1 process',
  'pg-1': 'PostgreSQL, 1 process',
  'pg-2': 'PostgreSQL, 2 processes',
};
const OPS: OpKey[] = ['reveal', 'list', 'send', 'run'];

interface Sample {
  result: JobResult;
  cpu: CpuUse;
}

interface Config {
  key: ConfigKey;
  db: BenchDatabaseKind;
  servers: HushProcess[];
  site: Site;
}

interface Data {
  samples: Map<string, Sample[]>;
  configs: Config[];
  redis: boolean;
  buildSeconds: number;
  profiles: {
    config: ConfigKey;
    op: OpKey;
    profile: ProfileSummary;
    requests: number;
    reqPerSec: number;
    /** PostgreSQL: connection states and wait events sampled during the profiled run. */
    waits: { label: string; share: number }[];
  }[];
  /** µs of Hush CPU per request by config/op (median over repetitions). */
  payload: string;
  /** Bytes of one list answer (what the bare app's /page serves too). */
  pageBytes: number;
}

async function redisReachable(): Promise<boolean> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

function baselineJob(
  key: Exclude<BaseKey, 'pg-read'>,
  baseline: BaselineProcess,
  value: string,
  payload: string,
  seconds: number,
): HttpJob {
  const common = { kind: 'http' as const, label: key, origins: [baseline.origin], connections: CONNECTIONS, seconds };
  if (key === 'bare') {
    return { ...common, method: 'GET', path: '/hello', headers: {}, check: { status: 200, startsWith: '{"value":' } };
  }
  if (key === 'bare-page') {
    const check = { status: 200, startsWith: '{"items":[', includes: [`"name":"${secretName(LIST_SECRETS - 1)}"`] };
    return { ...common, method: 'GET', path: '/page', headers: {}, check };
  }
  return {
    ...common,
    method: 'POST',
    path: key === 'forwarder' ? '/forward' : '/forward2',
    headers: { 'content-type': 'application/json' },
    body: payload,
    check: { status: 200, length: UPSTREAM_BODY_BYTES, includes: [value] },
  };
}

export const load: Scenario = {
  id: 'load',
  title: 'Under load: hush serve processes vs bare Fastify, a forwarder and a PostgreSQL point read',
  async run(options) {
    const loadAtStart = loadAverage();
    const { seconds: buildSeconds } = await buildHush();
    const upstream = await sharedUpstream();
    const generator = await sharedLoadGenerator();
    const value = randomSecretValue(seededRandom(4242));
    const bare = await startBaseline('bare');
    const forwarder = await startBaseline('forwarder', [upstream.url, `Bearer ${value}`]);
    const redis = options.databases.includes('postgres') && (await redisReachable());
    if (options.databases.includes('postgres') && !redis) {
      progress(`NOTICE: load: Redis not reachable at ${REDIS_URL}: the PostgreSQL processes count rate limits alone`);
    }
    const block = {
      id: 'call',
      type: 'api',
      method: 'GET',
      url: upstream.url,
      headers: [{ key: 'Authorization', value: `Bearer {{secret:${SECRET_NAME}}}` }],
    };
    const payload = JSON.stringify({ block });
    const data: Data = { samples: new Map(), configs: [], redis, buildSeconds, profiles: [], payload, pageBytes: 0 };
    const sites: Site[] = [];
    const seconds = JOB_SECONDS;

    try {
      for (const kind of options.databases) {
        const site = await createSite(kind, {
          HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8',
          HUSH_REVEAL_LIMIT_PER_MIN: REVEAL_LIMIT,
          ...(kind === 'postgres' && redis ? { HUSH_REDIS_URL: REDIS_URL } : {}),
        });
        progress(`load: ${kind}: starting hush serve`);
        const first = await startHush(site);
        const prepared = await prepareSite(kind, first, site, upstream, value);
        sites.push(prepared);
        if (kind === 'sqlite') data.configs.push({ key: 'sqlite-1', db: kind, servers: [first], site: prepared });
        else {
          const second = await startHush(site);
          data.configs.push({ key: 'pg-1', db: kind, servers: [first], site: prepared });
          data.configs.push({ key: 'pg-2', db: kind, servers: [first, second], site: prepared });
        }
      }

      // The bare app also serves a copy of a real list page (same payload, no Hush work), for information.
      const first = data.configs[0];
      if (first) {
        const page = await call(
          first.servers[0]?.origin ?? '',
          'GET',
          `/api/v1/workspaces/${first.site.owner.workspaceId}/secrets?limit=${LIST_SECRETS}`,
          {
            bearer: first.site.owner.bearer,
          },
        );
        bare.send({ type: 'list-page', page: page.json });
        data.pageBytes = Buffer.byteLength(page.text);
      }

      const groups = (config: Config | null, baseline: BaselineProcess | null): CpuGroup[] => [
        { label: 'hush', pids: () => config?.servers.map((s) => s.pid) ?? [] },
        { label: 'loadgen', pids: () => [generator.pid] },
        { label: 'baseline', pids: () => (baseline ? [baseline.pid] : []) },
        { label: 'upstream', pids: () => [upstream.pid] },
        { label: 'postgres', pids: () => pidsNamed('postgres') },
        { label: 'redis', pids: () => pidsNamed('redis-server') },
      ];
      const measure = async (key: string, job: LoadJob, config: Config | null, baseline: BaselineProcess | null) => {
        const g = groups(config, baseline);
        await generator.run(
          job.kind === 'http'
            ? { ...job, seconds: SETTLE_SECONDS, amount: undefined }
            : { ...job, seconds: SETTLE_SECONDS },
        );
        const before = cpuSnapshot(g);
        const result = await generator.run(job);
        const cpu = cpuBetween(before, cpuSnapshot(g));
        const list = data.samples.get(key) ?? [];
        list.push({ result, cpu });
        data.samples.set(key, list);
        const main = config ? 'hush' : baseline ? 'baseline' : 'postgres';
        progress(
          `load: ${key}: ${count(result.reqPerSec)} req/s, p50 ${ms(result.p50)} ms, p99 ${ms(result.p99)} ms; cores: ${main} ${(cpu.cores.get(main) ?? 0).toFixed(2)}, load generator ${(cpu.cores.get('loadgen') ?? 0).toFixed(2)}, machine ${cpu.machineCores.toFixed(2)}/${cpu.machineCapacity.toFixed(1)}`,
        );
        return result;
      };
      const pgSite = sites.find((s) => s.kind === 'postgres');
      const pgJob = (secs: number): LoadJob | null =>
        pgSite?.site.pgUrl
          ? {
              kind: 'pg',
              label: 'pg-read',
              url: pgSite.site.pgUrl,
              connections: CONNECTIONS,
              poolSize: PG_POOL,
              seconds: secs,
              sql: 'select id, name, version from secrets where id = $1',
              params: pgSite.secretIds.map((id) => [id]),
            }
          : null;

      // Warm-up: every server and baseline, every operation (JIT, pools, caches).
      progress(`load: warm-up (${WARMUP_SECONDS} s per server and operation)`);
      await generator.run(baselineJob('bare', bare, value, payload, WARMUP_SECONDS));
      await generator.run(baselineJob('bare-page', bare, value, payload, WARMUP_SECONDS));
      await generator.run(baselineJob('forwarder', forwarder, value, payload, WARMUP_SECONDS));
      await generator.run(baselineJob('forwarder2', forwarder, value, payload, WARMUP_SECONDS));
      const pgWarm = pgJob(WARMUP_SECONDS);
      if (pgWarm) await generator.run(pgWarm);
      const warmed = new Set<HushProcess>();
      for (const config of data.configs) {
        for (const server of config.servers) {
          if (warmed.has(server)) continue;
          warmed.add(server);
          for (const op of OPS) {
            await generator.run(
              hushJob(op, config.site, [server.origin], value, payload, {
                seconds: WARMUP_SECONDS,
                connections: CONNECTIONS,
              }),
            );
          }
        }
      }

      for (let rep = 0; rep < options.repetitions; rep++) {
        progress(`load: repetition ${rep + 1} of ${options.repetitions}`);
        // Each Hush figure is measured right after its baseline (paired ratios).
        await measure('bare', baselineJob('bare', bare, value, payload, seconds), null, bare);
        await measure('bare-page', baselineJob('bare-page', bare, value, payload, seconds), null, bare);
        for (const config of data.configs) {
          for (const op of ['reveal', 'list'] as const) {
            const origins = config.servers.map((s) => s.origin);
            await measure(
              `${config.key}/${op}`,
              hushJob(op, config.site, origins, value, payload, { seconds: seconds, connections: CONNECTIONS }),
              config,
              null,
            );
          }
        }
        await measure('forwarder', baselineJob('forwarder', forwarder, value, payload, seconds), null, forwarder);
        for (const config of data.configs) {
          for (const op of ['send', 'run'] as const) {
            const origins = config.servers.map((s) => s.origin);
            await measure(
              `${config.key}/${op}`,
              hushJob(op, config.site, origins, value, payload, { seconds: seconds, connections: CONNECTIONS }),
              config,
              null,
            );
          }
        }
        await measure('forwarder2', baselineJob('forwarder2', forwarder, value, payload, seconds), null, forwarder);
        const pg = pgJob(seconds);
        if (pg) await measure('pg-read', pg, null, null);
      }

      // Where the time goes in the server, for every missed per-request target (one profiled process each).
      for (const config of data.configs.filter((c) => c.servers.length === 1)) {
        for (const op of OPS) {
          const ratio = opRatio(data, config.key, op);
          const target = op === 'reveal' || op === 'list' ? MIN_REVEAL_LIST : op === 'send' ? MIN_SEND : null;
          // Runs are profiled too: they are what the n8n / Node-RED comparison is about.
          if (op !== 'run' && (target === null || !(ratio < target))) continue;
          progress(`load: ${config.key}/${op}: profiling a separate hush serve (--cpu-prof)`);
          const dir = mkdtempSync(path.join(tmpdir(), 'hush-bench-prof-'));
          try {
            const profiled = await startHush(config.site.site, {}, [
              '--cpu-prof',
              `--cpu-prof-dir=${dir}`,
              '--cpu-prof-interval=250',
            ]);
            await generator.run(
              hushJob(op, config.site, [profiled.origin], value, payload, {
                seconds: PROFILE_WARMUP_SECONDS,
                connections: CONNECTIONS,
              }),
            );
            const from = Number(process.hrtime.bigint() / 1000n);
            const running = generator.run(
              hushJob(op, config.site, [profiled.origin], value, payload, {
                seconds: seconds,
                connections: CONNECTIONS,
              }),
            );
            // On PostgreSQL, also what the connections were waiting on meanwhile.
            const waits = config.site.site.pgDatabase
              ? await samplePostgresWaits(config.site.site.pgDatabase, running)
              : [];
            const result = await running;
            const to = Number(process.hrtime.bigint() / 1000n);
            await profiled.stop();
            const keep = process.env.HUSH_BENCH_CPUPROFILE_DIR;
            if (keep) {
              mkdirSync(keep, { recursive: true });
              copyFileSync(serverProfileFile(dir), path.join(keep, `load-${config.key}-${op}.cpuprofile`));
              progress(`load: raw profile written to ${path.join(keep, `load-${config.key}-${op}.cpuprofile`)}`);
            }
            data.profiles.push({
              config: config.key,
              op,
              // Only the measured window: not the start-up, not the warm-up.
              profile: summarise(sliceProfile(readServerProfile(dir), from, to)),
              requests: result.requests,
              reqPerSec: result.reqPerSec,
              waits,
            });
          } catch (error) {
            progress(`load: profiling failed: ${error instanceof Error ? error.message : String(error)}`);
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        }
      }
    } finally {
      for (const config of data.configs) for (const s of config.servers) await s.stop();
      for (const s of sites) await s.site.remove();
      await bare.stop();
      await forwarder.stop();
    }
    return report(options, data, { start: loadAtStart, end: loadAverage() });
  },
};

function samples(data: Data, key: string): Sample[] {
  return data.samples.get(key) ?? [];
}

/** Median of the per-repetition ratios subject/base (repetition i of each ran minutes apart at most). */
function paired(data: Data, subject: string, base: string): number {
  const a = samples(data, subject);
  const b = samples(data, base);
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    ratios.push((a[i] as Sample).result.reqPerSec / (b[i] as Sample).result.reqPerSec);
  }
  return median(ratios);
}

function opRatio(data: Data, config: ConfigKey, op: OpKey): number {
  return paired(data, `${config}/${op}`, OP_BASE[op]);
}

function med(list: Sample[], pick: (s: Sample) => number): number {
  return median(list.map(pick));
}

function cores(list: Sample[], label: string): number {
  return med(list, (s) => s.cpu.cores.get(label) ?? Number.NaN);
}

function x(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : 'n/a';
}

function c2(v: number): string {
  return Number.isFinite(v) ? v.toFixed(2) : 'n/a';
}

/** CPU µs per request of a process group: cores × 1e6 ÷ req/s (median over repetitions). */
function usPerRequest(list: Sample[], label: string): number {
  return med(list, (s) => ((s.cpu.cores.get(label) ?? Number.NaN) * 1e6) / s.result.reqPerSec);
}

function report(options: ScenarioOptions, data: Data, load: { start: number; end: number }): ScenarioResult {
  const gates: ScenarioResult['gates'] = [];
  const verdicts: string[] = [];
  const mainRows: string[][] = [];
  const hasPg = data.configs.some((c) => c.db === 'postgres');
  const pgRead = samples(data, 'pg-read');
  const pgReadRate = med(pgRead, (s) => s.result.reqPerSec);

  for (const config of data.configs) {
    for (const op of OPS) {
      const list = samples(data, `${config.key}/${op}`);
      if (list.length === 0) continue;
      const ratio = opRatio(data, config.key, op);
      const target = op === 'reveal' || op === 'list' ? MIN_REVEAL_LIST : op === 'send' ? MIN_SEND : null;
      // Per-process targets: gated on one process (the baselines are one process each).
      const gated = target !== null && config.servers.length === 1;
      let verdict = '';
      if (gated) {
        const passed = ratio >= target;
        verdict = passed ? '✅ pass' : '❌ FAIL';
        gates.push({
          name: `load ${CONFIG_LABEL[config.key]} ${op} vs ${OP_BASE[op] === 'bare' ? 'bare Fastify' : 'forwarder'}`,
          passed,
          detail: `${count(med(list, (s) => s.result.reqPerSec))} req/s, ${x(ratio)} (target ≥ ${target}×)`,
        });
        verdicts.push(`${CONFIG_LABEL[config.key]} ${op} ${x(ratio)} ${passed ? '(pass)' : '(FAIL)'}`);
      } else if (target !== null) verdict = 'info (2 processes vs 1 baseline process)';
      else verdict = 'info';
      mainRows.push([
        CONFIG_LABEL[config.key],
        OP_LABEL[op],
        count(med(list, (s) => s.result.reqPerSec)),
        `${x(ratio)} of ${OP_BASE[op] === 'bare' ? 'bare' : 'forwarder'}${op === 'list' && samples(data, 'bare-page').length > 0 ? ` (${x(paired(data, `${config.key}/list`, 'bare-page'))} of bare page)` : ''}`,
        target === null ? '—' : `≥ ${target}×`,
        verdict,
        ms(med(list, (s) => s.result.p50)),
        ms(med(list, (s) => s.result.p99)),
        count(usPerRequest(list, 'hush')),
        c2(cores(list, 'hush')),
        op === 'reveal' && config.db === 'postgres' && Number.isFinite(pgReadRate)
          ? x(med(list, (s) => s.result.reqPerSec) / pgReadRate)
          : '',
      ]);
    }
  }

  // Two processes vs one on PostgreSQL.
  const scaleRows: string[][] = [];
  if (hasPg) {
    for (const op of OPS) {
      const one = samples(data, `pg-1/${op}`);
      const two = samples(data, `pg-2/${op}`);
      if (one.length === 0 || two.length === 0) continue;
      const ratio = paired(data, `pg-2/${op}`, `pg-1/${op}`);
      const gated = op === SCALE_OUT_OP;
      if (gated) {
        const passed = ratio >= MIN_SCALE_OUT;
        gates.push({
          name: `load PostgreSQL 2 processes vs 1 (${op})`,
          passed,
          detail: `${count(med(two, (s) => s.result.reqPerSec))} vs ${count(med(one, (s) => s.result.reqPerSec))} req/s, ${x(ratio)} (target ≥ ${MIN_SCALE_OUT}×)`,
        });
        verdicts.push(`2 vs 1 PostgreSQL processes (${op}) ${x(ratio)} ${passed ? '(pass)' : '(FAIL)'}`);
      }
      scaleRows.push([
        OP_LABEL[op],
        count(med(one, (s) => s.result.reqPerSec)),
        count(med(two, (s) => s.result.reqPerSec)),
        x(ratio),
        gated ? (ratio >= MIN_SCALE_OUT ? '✅ pass' : '❌ FAIL') : 'info',
        `${c2(cores(one, 'hush'))} → ${c2(cores(two, 'hush'))}`,
        `${count(usPerRequest(one, 'hush'))} → ${count(usPerRequest(two, 'hush'))}`,
        `${c2(cores(one, 'postgres'))} → ${c2(cores(two, 'postgres'))}`,
        `${c2(cores(one, 'loadgen'))} → ${c2(cores(two, 'loadgen'))}`,
        `${c2(med(one, (s) => s.cpu.machineCores))} → ${c2(med(two, (s) => s.cpu.machineCores))}`,
      ]);
    }
  }

  const baseRows = (['bare', 'bare-page', 'forwarder', 'forwarder2', 'pg-read'] as const).flatMap((key) => {
    const list = samples(data, key);
    if (list.length === 0) return [];
    const who = key === 'pg-read' ? 'postgres' : 'baseline';
    return [
      [
        BASE_LABEL[key],
        count(med(list, (s) => s.result.reqPerSec)),
        ms(med(list, (s) => s.result.p50)),
        ms(med(list, (s) => s.result.p99)),
        count(usPerRequest(list, who)),
        c2(cores(list, who)),
        count(usPerRequest(list, 'loadgen')),
      ],
    ];
  });

  const cpuRows: string[][] = [];
  const cpuRow = (label: string, list: Sample[], main: string) => {
    if (list.length === 0) return;
    cpuRows.push([
      label,
      c2(cores(list, main)),
      c2(cores(list, 'loadgen')),
      c2(cores(list, 'upstream')),
      c2(cores(list, 'postgres')),
      c2(cores(list, 'redis')),
      `${c2(med(list, (s) => s.cpu.machineCores))} of ${c2(med(list, (s) => s.cpu.machineCapacity))}`,
    ]);
  };
  cpuRow(`baseline: ${BASE_LABEL.bare}`, samples(data, 'bare'), 'baseline');
  cpuRow(`baseline: ${BASE_LABEL['bare-page']}`, samples(data, 'bare-page'), 'baseline');
  cpuRow(`baseline: ${BASE_LABEL.forwarder}`, samples(data, 'forwarder'), 'baseline');
  for (const config of data.configs) {
    for (const op of OPS) cpuRow(`${CONFIG_LABEL[config.key]}: ${op}`, samples(data, `${config.key}/${op}`), 'hush');
  }
  cpuRow(`baseline: PostgreSQL point read (the pg pool runs in the load generator)`, pgRead, 'postgres');

  // Context: the issue's figures for n8n and Node-RED (webhook → HTTP request → respond; not measured here).
  const contextLines = data.configs
    .filter((c) => c.servers.length === 1)
    .map((c) => {
      const run = opRatio(data, c.key, 'run');
      const run2 = paired(data, `${c.key}/run`, 'forwarder2');
      const send = opRatio(data, c.key, 'send');
      const vs = (r: number) => OTHERS.map((o) => `${(r / o.ratio).toFixed(1)}× ${o.name}'s`).join(', ');
      return `- ${CONFIG_LABEL[c.key]}: a three-block run makes two upstream calls, so its like-for-like ceiling is the two-call forwarder: ${x(run2)} of it (${vs(run2)}); ${x(run)} of the one-call forwarder. Send request, one block with one call and no run record: ${x(send)} of the forwarder (${vs(send)}).`;
    });

  const allPassed = gates.every((g) => g.passed);
  const reps = options.repetitions;
  const seconds = JOB_SECONDS;

  const lines = [
    `Run ${machineLine(options.machine)}. Databases: ${[...new Set(data.configs.map((c) => c.db))].map((d) => (d === 'sqlite' ? 'SQLite' : 'PostgreSQL')).join(', ')}.`,
    '',
    `**Targets:** reveal and list ≥ ${MIN_REVEAL_LIST}× a bare Fastify route; Send request ≥ ${MIN_SEND}× a minimal Fastify + undici forwarder; two PostgreSQL processes ≥ ${MIN_SCALE_OUT}× one on a workload that is not database-bound (${SCALE_OUT_OP}). **Result: ${allPassed ? 'pass' : 'FAIL'} — ${verdicts.join('; ')}.**`,
    '',
    table(
      [
        'Hush',
        'operation',
        'req/s',
        'vs baseline',
        'target',
        'gate',
        'p50 ms',
        'p99 ms',
        'Hush CPU µs/req',
        'Hush cores',
        'vs PG point read',
      ],
      mainRows,
      ['left', 'left', 'right', 'right', 'left', 'left', 'right', 'right', 'right', 'right', 'right'],
    ),
    '',
    `${CONNECTIONS} connections (one request in flight on each) for ${seconds.toFixed(1)} s per operation and repetition; every figure is the median of ${reps} repetitions; *vs baseline* is the median of the per-repetition ratios, each Hush measurement taken right after its baseline's in the same repetition. *Hush CPU µs/req* is the server processes' CPU time (from /proc) per answered request; *Hush cores* the cores they kept busy. *vs PG point read*: reveal's rate against the plain PostgreSQL point read (context, not a target). *of bare page* (list): against the bare Fastify app serving a copy of the same ${count(data.pageBytes)}-byte page — the same payload without Hush's work (information, not the target's baseline).`,
    '',
    '#### Baselines (same run, same machine, each its own process)',
    '',
    table(
      ['baseline', 'req/s', 'p50 ms', 'p99 ms', 'its CPU µs/req', 'its cores', 'load generator CPU µs/req'],
      baseRows,
      ['left', 'right', 'right', 'right', 'right', 'right', 'right'],
    ),
    '',
    ...(scaleRows.length > 0
      ? [
          '#### Two processes vs one (PostgreSQL)',
          '',
          table(
            [
              'operation',
              '1 process req/s',
              '2 processes req/s',
              '2 / 1',
              `≥ ${MIN_SCALE_OUT}×`,
              'Hush cores',
              'Hush CPU µs/req',
              'PostgreSQL cores',
              'load generator cores',
              'machine busy cores',
            ],
            scaleRows,
            ['left', 'right', 'right', 'right', 'left', 'right', 'right', 'right', 'right', 'right'],
          ),
          '',
          scaleOutNote(data, options),
          '',
        ]
      : []),
    '#### CPU utilisation (cores, median over repetitions)',
    '',
    table(['measurement', 'server(s)', 'load generator', 'upstream', 'PostgreSQL', 'Redis', 'machine busy'], cpuRows, [
      'left',
      'right',
      'right',
      'right',
      'right',
      'right',
      'right',
    ]),
    '',
    '*PostgreSQL* is every `postgres` process on the machine and *machine busy* every process (including other users of this shared machine); 1.00 is one core kept busy for the whole measurement.',
    '',
    '#### For context: n8n and Node-RED',
    '',
    `The issue quotes, for a webhook → HTTP request (bearer) → respond workflow against a local echo, about ${OTHERS.map((o) => `${o.ratio}× of a bare forwarder for ${o.name}`).join(' and ')}, both handing the echoed credential back unredacted (not re-measured here). Hush, redacting every answer and recording every run:`,
    '',
    ...contextLines,
    '',
    ...diagnosis(data, options),
    '#### Method (this scenario)',
    '',
    `- **Hush** runs as deployed: \`src/\` compiled with \`tsconfig.build.json\` (tsc, as \`npm run build\`; ${data.buildSeconds.toFixed(1)} s) and started as \`node dist/cli/hush.js serve\` child processes with \`HUSH_LOG_LEVEL=silent\`, \`HUSH_OUTBOUND_ALLOW_CIDRS=127.0.0.0/8\`, \`HUSH_REVEAL_LIMIT_PER_MIN=${REVEAL_LIMIT}\` (the configuration maximum; no 429 was answered — every answer is checked). One SQLite site (one process: its file is the deployment's single node) and one PostgreSQL database served by one process, then by two (different ports, same database and master key${data.redis ? `, \`HUSH_REDIS_URL=${REDIS_URL}\` so the reveal limit is counted across both` : '; Redis was not reachable, so each process counted rate limits alone'}). The web UI is not built into this copy (the API is what is measured).`,
    `- **Data**, set up over HTTP: first-run setup, a personal API token (every measured request uses \`Authorization: Bearer\`), ${LIST_SECRETS} masked secrets \`${secretName(0)}\`…, a secret \`${SECRET_NAME}\` allowed on 127.0.0.1 and a workflow \`first\` (API: GET the upstream with \`Authorization: Bearer {{secret:${SECRET_NAME}}}\`, capture \`$.request\`) → \`note\` (Set Values) → \`second\` (API: the same call with an \`X-Note\` header from the variable).`,
    `- **Operations and checks** (the first wrong answer stops the run): reveal \`POST …/secrets/:id/reveal\` rotating over the ${LIST_SECRETS} secrets, the value compared with the one stored; list \`GET …/secrets?limit=${LIST_SECRETS}\`, first and last names present, no value (nothing changes the workspace meanwhile, so after the first request every list is answered from the page cache, with the default \`HUSH_LIST_CACHE_MB\`: authentication, the permission check and one point read of the workspace's audit head, then the stored bytes); Send \`POST …/blocks/send\` with \`${data.payload.replace(/http:\/\/127\.0\.0\.1:\d+/, 'http://127.0.0.1:<port>')}\`, \`ok: true\`, the echoed header as \`Bearer [secret:${SECRET_NAME}]\`, the value nowhere; run \`POST …/workflows/:id/runs\` with \`{}\`, 201, \`succeeded\`, redacted echo, the value nowhere.`,
    `- **Baselines**, each its own process: a bare \`Fastify({ logger: false })\` with \`GET /hello\` answering a ${'{"value":…}'} JSON of a reveal's size (and \`GET /page\`, information only: a copy of a real list page of ${count(data.pageBytes)} bytes, returned as an object for Fastify to serialise); a forwarder (\`POST /forward\`, same request body as Send, one undici \`GET <upstream>\` with the bearer value through an \`Agent\` configured like Hush's outbound client; \`/forward2\` makes two calls in a row); a PostgreSQL point read \`select id, name, version from secrets where id = $1\` (rotating over the ${LIST_SECRETS} ids) through a pg pool of ${PG_POOL} driven by ${CONNECTIONS} closed loops in the load generator process. Upstream: the run's shared child process answering ${UPSTREAM_BODY_BYTES} bytes of JSON that echo Authorization.`,
    `- **Load generator**: autocannon 8 as a library in its own child process, ${CONNECTIONS} keep-alive connections spread evenly over the target's processes, one request in flight per connection; ${WARMUP_SECONDS} s of warm-up per server process and operation, then ${reps} repetitions of ${seconds.toFixed(1)} s per operation, each right after ${SETTLE_SECONDS} s of the same load unmeasured (a process switching workloads needs a moment for its JIT and heap to settle; baselines get the same) (kept short so that the whole suite stays within 10 minutes). req/s = answers ÷ wall time; p50/p99 over every answer (nearest rank).`,
    `- **CPU** is read from /proc (utime + stime) for each process group around every measurement. The load generator costs CPU on the same ${options.machine.cores} cores: its µs per request is listed with the baselines, and the ceiling a baseline reaches here is partly the load generator's.`,
    `- A missed per-request target (and every run) is explained by a CPU profile of a separate \`hush serve\` started with \`node --cpu-prof\` (V8 sampling profiler, no change to src/) for one more measurement of that operation after ${PROFILE_WARMUP_SECONDS} s of warm-up, cut to the measured window (start-up and warm-up excluded); its samples are charged to src/ files, npm packages and Node.js core as in the other scenarios. On PostgreSQL, \`pg_stat_activity\` of the database is sampled meanwhile.`,
    loadNote(options.machine.cores, load.start, load.end),
    ...commandLines('load'),
  ];
  return { markdown: lines.join('\n'), gates };
}

/** Why two processes did (not) scale, from this run's CPU figures for the gated workload. */
function scaleOutNote(data: Data, options: ScenarioOptions): string {
  const one = samples(data, `pg-1/${SCALE_OUT_OP}`);
  const two = samples(data, `pg-2/${SCALE_OUT_OP}`);
  const cores = options.machine.cores;
  const busy1 = med(one, (s) => s.cpu.machineCores);
  const busy2 = med(two, (s) => s.cpu.machineCores);
  const us1 = usPerRequest(one, 'hush');
  const us2 = usPerRequest(two, 'hush');
  const pg1 = med(one, (s) => s.cpu.cores.get('postgres') ?? Number.NaN);
  const hush1 = med(one, (s) => s.cpu.cores.get('hush') ?? Number.NaN);
  const idle = cores - busy1;
  return [
    `The machine has ${cores} cores, shared by the Hush processes, the load generator, the upstream, PostgreSQL and Redis; a second process can only add throughput with cores to spare. ${SCALE_OUT_OP} is the gated workload because it is read-only (no audit write, no row lock): with one process, Hush kept ${c2(hush1)} cores busy and PostgreSQL ${c2(pg1)}, so the database is not what limits it — Hush's single event loop is (≈ 1 core).`,
    `With one process the machine was already busy ${c2(busy1)} of ${cores} cores, which leaves at most ${c2(Math.max(0, idle))} core for a second one: at the one-process cost per request that allows about ${x(1 + Math.max(0, idle) / Math.max(hush1, 0.01))} the one-process rate, below ${MIN_SCALE_OUT}× before anything else.`,
    `With two processes the machine was busy ${c2(busy2)} cores and each request cost Hush ${count(us2)} µs of CPU instead of ${count(us1)} µs (${x(us2 / us1)}) — plausibly because two event loops each see half the requests per wake-up (less work per system call) and preempt each other, the load generator and PostgreSQL on the same cores. ${MIN_SCALE_OUT}× needs cores the second process can have to itself — e.g. two processes on a machine with 4+ cores, or the load generator on another machine.`,
  ].join(' ');
}

function diagnosis(data: Data, options: ScenarioOptions): string[] {
  if (data.profiles.length === 0) return [];
  const lines = ['#### Where the server time goes (missed targets, and runs)', ''];
  const bare = samples(data, 'bare');
  const fwd = samples(data, 'forwarder');
  const bareUs = usPerRequest(bare, 'baseline');
  const fwdUs = usPerRequest(fwd, 'baseline');
  lines.push(
    `The bare route costs its process ${count(bareUs)} µs of CPU per request and the forwarder ${count(fwdUs)} µs. If CPU were the only limit and the cores were shared the same way, 0.5× of the bare route's rate would leave a Hush request about ${count(bareUs * 2)} µs of CPU, and 0.6× of the forwarder's about ${count(fwdUs / 0.6)} µs. What the profiled operations cost the Hush process (from /proc, median over the repetitions):`,
    '',
  );
  for (const config of data.configs.filter((c) => c.servers.length === 1)) {
    for (const op of OPS) {
      const list = samples(data, `${config.key}/${op}`);
      const p = data.profiles.find((q) => q.config === config.key && q.op === op);
      if (!p || list.length === 0) continue;
      const us = usPerRequest(list, 'hush');
      const base = OP_BASE[op] === 'bare' ? bareUs : fwdUs;
      lines.push(
        `- **${CONFIG_LABEL[config.key]}, ${op}**: ${count(us)} µs per request (${(us / base).toFixed(1)}× its baseline's ${count(base)} µs).`,
      );
    }
  }
  lines.push('');
  for (const p of data.profiles) {
    lines.push(
      `##### ${CONFIG_LABEL[p.config]}: ${OP_LABEL[p.op]}`,
      '',
      `CPU profile of a separate \`hush serve\` (\`--cpu-prof\`, 250 µs sampling) during ${count(p.requests)} requests (${count(p.reqPerSec)} req/s while profiled).`,
      '',
      profileMarkdown(p.profile, p.requests),
      '',
      ...(p.waits.length > 0
        ? [
            `What this database's PostgreSQL connections were doing meanwhile (\`pg_stat_activity\` every 20 ms; share of connection-samples): ${p.waits
              .slice(0, 6)
              .map((w) => `${w.label} ${(w.share * 100).toFixed(0)} %`)
              .join(
                ', ',
              )}. \`Client: ClientRead\` is PostgreSQL waiting for Hush's next statement, \`Lock: transactionid\` / \`Lock: tuple\` a transaction waiting for another's row lock (the workspace's audit-chain head, locked by every audited write until COMMIT), \`IO: WALSync\` a commit's fsync.`,
            '',
          ]
        : []),
    );
  }
  if (options.machine.cores <= 2) {
    lines.push(
      `On ${options.machine.cores} cores the load generator, the upstream and PostgreSQL take CPU from the server too; the per-request CPU figures above do not depend on that sharing, the throughput ratios partly do.`,
      '',
    );
  }
  return lines;
}
