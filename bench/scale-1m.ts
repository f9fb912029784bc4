/**
 * Scenario "scale-1m": 1,000,000 secrets across 10,000 workspaces (100 each),
 * generated through the bulk path (support/seed.ts seedWorkspaces), on
 * SQLite and PostgreSQL. List (a page of 100) and reveal are measured in a
 * database of 10,000 secrets (100 workspaces of the same shape) and in one
 * of 1,000,000, side by side (repetitions interleaved across the two).
 * Target (issue 7): p50 latency at 1M ≤ 1.5× p50 at 10k, for both operations.
 *
 * The server is built in process as in secrets-scale (loadConfig →
 * createAppContext → buildServer) and requests go through `app.inject`
 * (the whole HTTP stack without sockets), one at a time.
 */
import { statSync } from 'node:fs';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import type { BenchDatabaseKind } from './support/databases.js';
import { type BenchOwner, type BenchServer, setupOwner, startBenchServer } from './support/hush.js';
import { loadAverage, loadNote, machineLine } from './support/machine.js';
import { commandLines, count, ms, sizeLabel, table } from './support/markdown.js';
import { progress } from './support/progress.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from './support/scenario.js';
import { refreshStatistics, secretName, secretValue, seedWorkspaces } from './support/seed.js';
import { type LatencySummary, medianOfRuns, seededRandom, summarize } from './support/stats.js';

/** Total secrets at each measured size. */
const DEFAULT_TOTALS = [10_000, 1_000_000];
const PER_WORKSPACE = 100;
/** Workspaces the requests are spread over at each size (uniformly chosen among all of them). */
const SAMPLE = 20;
const MAX_RATIO = 1.5;
const REVEAL_LIMIT = '1000000';
const FIRST_WARMUP = 500;

type OpKey = 'list' | 'reveal';
const OP_LABEL: Record<OpKey, string> = {
  list: 'list, page of 100 (random workspace)',
  reveal: 'reveal (random secret, random workspace)',
};
const DB_LABEL: Record<BenchDatabaseKind, string> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };

interface Generation {
  db: BenchDatabaseKind;
  fromSecrets: number;
  toSecrets: number;
  rows: number;
  seconds: number;
  /** Database size after the step, bytes. */
  bytes: number;
}

interface Measurement {
  db: BenchDatabaseKind;
  total: number;
  op: OpKey;
  stats: LatencySummary;
}

interface SampleWorkspace {
  id: string;
  bearer: string;
  secretIds: string[];
}

async function databaseBytes(server: BenchServer): Promise<number> {
  const db = server.ctx.config.database;
  if (db.kind === 'sqlite') {
    let bytes = 0;
    for (const suffix of ['', '-wal']) {
      try {
        bytes += statSync(`${db.file}${suffix}`).size;
      } catch {
        // No WAL right now.
      }
    }
    return bytes;
  }
  const { rows } = await sql<{ n: string }>`select pg_database_size(current_database()) as n`.execute(server.ctx.db);
  return Number(rows[0]?.n ?? Number.NaN);
}

/** SAMPLE workspaces chosen uniformly among the first `workspaces` bulk ones, each with its own API token. */
async function sampleWorkspaces(
  server: BenchServer,
  owner: BenchOwner,
  workspaces: number,
  seed: number,
): Promise<SampleWorkspace[]> {
  const random = seededRandom(seed);
  const indexes = new Set<number>();
  while (indexes.size < Math.min(SAMPLE, workspaces)) indexes.add(Math.floor(random() * workspaces));
  const out: SampleWorkspace[] = [];
  for (const index of indexes) {
    const ws = await server.ctx.db
      .selectFrom('workspaces')
      .select('id')
      .where('name', '=', `ws_${String(index).padStart(6, '0')}`)
      .executeTakeFirstOrThrow();
    const token = await server.app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: { cookie: owner.session.cookie, 'x-hush-csrf': owner.session.csrf },
      payload: { name: 'bench', workspaceId: ws.id, expiresInDays: 1 },
    });
    if (token.statusCode !== 201) throw new Error(`token: HTTP ${token.statusCode} ${token.body}`);
    const secrets = await server.ctx.db
      .selectFrom('secrets')
      .select(['id', 'name'])
      .where('workspace_id', '=', ws.id)
      .orderBy('name')
      .execute();
    if (secrets.length !== PER_WORKSPACE) throw new Error(`workspace ${index} has ${secrets.length} secrets`);
    out.push({ id: ws.id, bearer: (token.json() as { token: string }).token, secretIds: secrets.map((s) => s.id) });
  }
  return out;
}

function nextRequest(
  op: OpKey,
  sample: SampleWorkspace[],
  random: () => number,
): { options: InjectOptions; check(res: LightMyRequestResponse): void } {
  const ws = sample[Math.floor(random() * sample.length)] as SampleWorkspace;
  const headers = { authorization: `Bearer ${ws.bearer}` };
  const base = `/api/v1/workspaces/${ws.id}/secrets`;
  if (op === 'list') {
    return {
      options: { method: 'GET', url: `${base}?limit=${PER_WORKSPACE}`, headers },
      check(res) {
        if (res.statusCode !== 200) throw new Error(`list: HTTP ${res.statusCode} ${res.body.slice(0, 300)}`);
        const items = (res.json() as { items: { name: string }[] }).items;
        if (items.length !== PER_WORKSPACE || items[0]?.name !== secretName(0)) {
          throw new Error(`list: ${items.length} items from ${items[0]?.name}`);
        }
      },
    };
  }
  const i = Math.floor(random() * PER_WORKSPACE);
  return {
    options: { method: 'POST', url: `${base}/${ws.secretIds[i]}/reveal`, headers },
    check(res) {
      if (res.statusCode !== 200) throw new Error(`reveal: HTTP ${res.statusCode} ${res.body.slice(0, 300)}`);
      if ((res.json() as { value: string }).value !== secretValue(i)) throw new Error('reveal: wrong value');
    },
  };
}

async function measure(server: BenchServer, op: OpKey, sample: SampleWorkspace[], n: number, seed: number) {
  const random = seededRandom(seed);
  const samples: number[] = new Array(n);
  for (let k = 0; k < n; k++) {
    const { options, check } = nextRequest(op, sample, random);
    const t0 = performance.now();
    const res = await server.app.inject(options);
    samples[k] = performance.now() - t0;
    check(res);
  }
  return samples;
}

interface SizedSite {
  total: number;
  server: BenchServer;
  sample: SampleWorkspace[];
}

/** A fresh database of `total` secrets (bulk path from empty) and its sampled workspaces. */
async function buildSite(
  kind: BenchDatabaseKind,
  total: number,
  out: { generations: Generation[] },
  sites: SizedSite[],
) {
  progress(`scale-1m: ${kind} @ ${sizeLabel(total)}: starting server`);
  const server = await startBenchServer(kind, {
    HUSH_REVEAL_LIMIT_PER_MIN: REVEAL_LIMIT,
    // The question is how the database path scales: every list is answered from the database.
    HUSH_LIST_CACHE_MB: '0',
  });
  const site: SizedSite = { total, server, sample: [] };
  sites.push(site);
  const owner = await setupOwner(server);
  const target = Math.ceil(total / PER_WORKSPACE);
  let lastReport = 0;
  const result = await seedWorkspaces(server.ctx, {
    userId: owner.userId,
    from: 0,
    to: target,
    secretsPerWorkspace: PER_WORKSPACE,
    onChunk: (done) => {
      if (done - lastReport >= 2_000) {
        lastReport = done;
        progress(`scale-1m: ${kind} @ ${sizeLabel(total)}: ${count(done * PER_WORKSPACE)} secrets`);
      }
    },
  });
  await refreshStatistics(server.ctx);
  out.generations.push({
    db: kind,
    fromSecrets: 0,
    toSecrets: target * PER_WORKSPACE,
    rows: result.rows,
    seconds: result.seconds,
    bytes: await databaseBytes(server),
  });
  progress(
    `scale-1m: ${kind}: ${count(result.secrets)} secrets in ${count(result.workspaces)} workspaces generated in ${result.seconds.toFixed(1)} s (${count(result.secrets / result.seconds)} secrets/s, ${count(result.rows / result.seconds)} rows/s; building ${result.buildSeconds.toFixed(1)} s, writing ${result.writeSeconds.toFixed(1)} s)`,
  );
  site.sample = await sampleWorkspaces(server, owner, target, total);
}

/**
 * One database per size, each generated from empty and all open together, so
 * that the sizes are measured side by side: repetition r of every size and
 * operation runs before repetition r + 1 of any, and a slow patch of the
 * machine hits every size alike instead of deciding the ratio.
 */
async function runOnDatabase(
  kind: BenchDatabaseKind,
  totals: number[],
  options: ScenarioOptions,
  out: { generations: Generation[]; measurements: Measurement[] },
): Promise<void> {
  const sites: SizedSite[] = [];
  try {
    for (const total of totals) await buildSite(kind, total, out, sites);
    const ops: OpKey[] = ['list', 'reveal'];
    for (const [i, site] of sites.entries()) {
      const warmup = i === 0 ? Math.max(options.warmup, FIRST_WARMUP) : options.warmup;
      for (const op of ops) await measure(site.server, op, site.sample, warmup, 1);
    }
    const runs = new Map<string, LatencySummary[]>();
    for (let rep = 0; rep < options.repetitions; rep++) {
      // The order of the sizes alternates, so neither always runs right after the other's reveals.
      for (const site of rep % 2 === 0 ? sites : [...sites].reverse()) {
        for (const op of ops) {
          const key = `${site.total}/${op}`;
          if (!runs.has(key)) runs.set(key, []);
          runs.get(key)?.push(summarize(await measure(site.server, op, site.sample, options.requests, 100 + rep)));
        }
      }
    }
    for (const site of sites) {
      for (const op of ops) {
        const stats = medianOfRuns(runs.get(`${site.total}/${op}`) ?? []);
        out.measurements.push({ db: kind, total: site.total, op, stats });
        progress(
          `scale-1m: ${kind} @ ${sizeLabel(site.total)}: ${op}: p50 ${ms(stats.p50)} ms, p99 ${ms(stats.p99)} ms`,
        );
      }
    }
  } finally {
    // Every server closed (its database removed) even if one close fails, without hiding an error from above.
    for (const closed of await Promise.allSettled(sites.map((site) => site.server.close()))) {
      if (closed.status === 'rejected')
        progress(`scale-1m: ${kind}: closing a server failed: ${String(closed.reason)}`);
    }
  }
}

export const scale1m: Scenario = {
  id: 'scale-1m',
  title: 'One million secrets: list and reveal at 1M secrets (10,000 workspaces) vs 10k',
  async run(options) {
    const loadAtStart = loadAverage();
    const totals = [...new Set(options.sizes ?? DEFAULT_TOTALS)].sort((a, b) => a - b);
    if (totals.length < 2) throw new Error('scale-1m: needs two sizes (e.g. --sizes 10000,1000000)');
    const out = { generations: [] as Generation[], measurements: [] as Measurement[] };
    for (const kind of options.databases) await runOnDatabase(kind, totals, options, out);
    return report(options, totals, out, { start: loadAtStart, end: loadAverage() });
  },
};

function report(
  options: ScenarioOptions,
  totals: number[],
  out: { generations: Generation[]; measurements: Measurement[] },
  load: { start: number; end: number },
): ScenarioResult {
  const small = totals[0] as number;
  const large = totals.at(-1) as number;
  const gates: ScenarioResult['gates'] = [];
  const verdicts: string[] = [];
  const rows: string[][] = [];
  const find = (db: BenchDatabaseKind, total: number, op: OpKey) =>
    out.measurements.find((m) => m.db === db && m.total === total && m.op === op);
  for (const db of options.databases) {
    for (const op of ['list', 'reveal'] as const) {
      const a = find(db, small, op);
      const b = find(db, large, op);
      if (!a || !b) continue;
      const ratio = b.stats.p50 / a.stats.p50;
      const passed = ratio <= MAX_RATIO;
      gates.push({
        name: `scale-1m ${DB_LABEL[db]} ${op} p50 at ${sizeLabel(large)} vs ${sizeLabel(small)}`,
        passed,
        detail: `${ms(b.stats.p50)} vs ${ms(a.stats.p50)} ms (${ratio.toFixed(2)}×, target ≤ ${MAX_RATIO}×)`,
      });
      verdicts.push(`${DB_LABEL[db]} ${op} ${ratio.toFixed(2)}× ${passed ? '(pass)' : '(FAIL)'}`);
      rows.push([
        DB_LABEL[db],
        OP_LABEL[op],
        ms(a.stats.p50),
        ms(b.stats.p50),
        `${ratio.toFixed(2)}×`,
        passed ? '✅ pass' : '❌ FAIL',
        ms(a.stats.p99),
        ms(b.stats.p99),
      ]);
    }
  }
  const genRows = out.generations.map((g) => [
    DB_LABEL[g.db],
    `${sizeLabel(g.fromSecrets)} → ${sizeLabel(g.toSecrets)}`,
    count((g.toSecrets - g.fromSecrets) / PER_WORKSPACE),
    count(g.toSecrets - g.fromSecrets),
    count(g.rows),
    g.seconds.toFixed(1),
    count((g.toSecrets - g.fromSecrets) / g.seconds),
    count(g.rows / g.seconds),
    `${(g.bytes / 1024 ** 2).toFixed(0)} MiB`,
  ]);
  const allPassed = gates.every((g) => g.passed);
  const lines = [
    `Run ${machineLine(options.machine)}. Databases: ${options.databases.map((d) => DB_LABEL[d]).join(', ')}.`,
    '',
    `**Target:** p50 latency of list and reveal with ${sizeLabel(large)} secrets in the database (${count(large / PER_WORKSPACE)} workspaces of ${PER_WORKSPACE}) ≤ ${MAX_RATIO}× the p50 with ${sizeLabel(small)} (${count(small / PER_WORKSPACE)} workspaces of ${PER_WORKSPACE}). **Result: ${allPassed ? 'pass' : 'FAIL'} — ${verdicts.join(', ')}.**`,
    '',
    table(
      [
        'database',
        'operation',
        `p50 ms at ${sizeLabel(small)}`,
        `p50 ms at ${sizeLabel(large)}`,
        `${sizeLabel(large)} / ${sizeLabel(small)}`,
        `≤ ${MAX_RATIO}×`,
        `p99 ms at ${sizeLabel(small)}`,
        `p99 ms at ${sizeLabel(large)}`,
      ],
      rows,
      ['left', 'left', 'right', 'right', 'right', 'left', 'right', 'right'],
    ),
    '',
    `In-process (\`app.inject\`), one request in flight; each figure is the median over ${options.repetitions} repetitions of ${count(options.requests)} requests per operation, the repetitions interleaved across operations and sizes (one database per size, all open side by side).`,
    '',
    '#### Generation (bulk path)',
    '',
    table(
      [
        'database',
        'secrets',
        'workspaces',
        'secrets added',
        'rows written',
        'seconds',
        'secrets/s',
        'rows/s',
        'database size',
      ],
      genRows,
      ['left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
    ),
    '',
    '*Rows written* counts every table: per workspace its row, its key and its owner membership; per secret its row, its encrypted version and its reserved name.',
    '',
    '#### Method (this scenario)',
    '',
    `- One fresh database per engine and size (${totals.map((t) => sizeLabel(t)).join(' and ')} secrets, each generated from empty and open at the same time), migrated by Hush itself; first-run setup through the API (the owner). The workspaces are then generated by \`seedWorkspaces\` (bench/support/seed.ts): per workspace a row, key version 1 (a fresh data key wrapped by the root key, as \`createKey\` does), the owner's membership, and ${PER_WORKSPACE} masked secrets \`${secretName(0)}\`… with version 1 encrypted by \`encryptSecretValue\` under that key and their reserved names — the rows the services write, without audit events. Chunks of 100 workspaces (${count(100 * PER_WORKSPACE)} secrets), one transaction each, built (ids, key wrapping, encryption) in this process while the previous chunks are written elsewhere: on SQLite by a writer child process with its own connection to the file (WAL), prepared multi-row INSERTs of 100 rows, \`foreign_keys = OFF\` on that connection; on PostgreSQL over two connections, one \`INSERT … SELECT * FROM unnest($1::text[], …)\` per table, with \`session_replication_role = replica\` (no per-row foreign-key triggers, as \`pg_restore --disable-triggers\`) and \`synchronous_commit = off\` for those sessions. Foreign keys are not checked during the load because the rows reference each other by construction. PostgreSQL gets \`ANALYZE\` and a \`CHECKPOINT\` after the generation; SQLite gets its write-ahead log folded back into the file (\`wal_checkpoint(TRUNCATE)\`), which a quiet server's checkpointer would have done by then (otherwise the first measurements run while it copies hundreds of MB).`,
    `- At each size, ${SAMPLE} workspaces are chosen uniformly among all of them (seeded) and get a personal API token each (tokens are per workspace); every request picks one of them at random: **list** \`GET …/secrets?limit=${PER_WORKSPACE}\` (all ${PER_WORKSPACE} items, first name checked), **reveal** \`POST …/secrets/:id/reveal\` of a random secret (value checked). Reveal runs with \`HUSH_REVEAL_LIMIT_PER_MIN=${REVEAL_LIMIT}\` and writes its audit event, as in production. The list page cache is off (\`HUSH_LIST_CACHE_MB=0\`): every list is read from the database.`,
    `- Warm-up: ${FIRST_WARMUP} requests per operation on the smallest database (V8), ${options.warmup} on each other; then ${options.repetitions} repetitions × ${options.requests} sequential requests per operation and size, interleaved: repetition r of every size and operation before repetition r + 1 of any (the sizes in turn first), so that a slow patch of the machine hits both sizes alike.`,
    loadNote(options.machine.cores, load.start, load.end),
    ...commandLines('scale-1m'),
  ];
  return { markdown: lines.join('\n'), gates };
}
