/**
 * Scenario "secrets-scale": list (a page of 100) and reveal of secrets as one
 * workspace grows from 1k to 10k to 100k secrets, on SQLite and PostgreSQL.
 * Target (issue "Done when"): the p50 latency of both operations at 100k is
 * at most 2× the p50 at 1k.
 *
 * Everything measured goes through the real server (`app.inject`) with a
 * personal API token; only the bulk load writes rows directly (see
 * support/seed.ts).
 */
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { CompiledQuery } from 'kysely';
import { type App, encodeCursor } from '../src/app/http.js';
import type { BenchDatabaseKind } from './support/databases.js';
import { type BenchServer, setupOwner, startBenchServer } from './support/hush.js';
import { machineLine } from './support/machine.js';
import { codeBlock, count, ms, sizeLabel, table } from './support/markdown.js';
import { progress } from './support/progress.js';
import { describe, explain, recordingContext, replay, replayable } from './support/queries.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from './support/scenario.js';
import { refreshStatistics, type SeededSecret, secretName, secretValue, seedSecrets } from './support/seed.js';
import { type LatencySummary, medianOfRuns, seededRandom, summarize } from './support/stats.js';

const DEFAULT_SIZES = [1_000, 10_000, 100_000];
const PAGE = 100;
/** Matches secret_000500 … secret_000599: exactly one page at every size ≥ 1k. */
const SEARCH = 'secret_0005';
const MAX_RATIO = 2;
/** Config allows at most 100 000 reveals per minute per user; the run stays far below. */
const REVEAL_LIMIT = '1000000';
const SQL_REPLAYS = 200;
/**
 * The ungated (information-only) search is measured with fewer requests and
 * replays and a shorter warm-up: at 100k a search takes 15–60 ms; with 3 s of
 * warm-up, 3 × 100 requests and 70 SQL replays it took ~23 s of the
 * PostgreSQL run (~6 s on SQLite) of the suite's 10-minute budget without
 * deciding a gate.
 */
const INFO_REQUESTS = 40;
/** Sequential requests per repetition of a gated operation, unless --requests says otherwise (suite time budget). */
const GATED_REQUESTS = 200;
const INFO_SQL_REPLAYS = 20;
/** Warm-up requests per operation before the first size is measured. */
const FIRST_WARMUP = 500;
/** A warm-up stops early after this long (once 30 requests are done): slow operations need fewer. */
const WARMUP_MAX_MS = 3_000;
/** The same for the information-only search. */
const INFO_WARMUP_MAX_MS = 1_000;

type OpKey = 'list-first' | 'list-middle' | 'reveal' | 'search';

interface Operation {
  key: OpKey;
  label: string;
  /** Counted against the ≤ 2× target. */
  gated: boolean;
  next(): { options: InjectOptions; check(res: LightMyRequestResponse): void };
}

interface Measurement {
  db: BenchDatabaseKind;
  size: number;
  op: OpKey;
  label: string;
  gated: boolean;
  stats: LatencySummary;
  /** p50 of the request's read queries replayed alone (no HTTP, no auth hook overhead). */
  sqlP50: number;
}

interface BulkLoad {
  db: BenchDatabaseKind;
  from: number;
  to: number;
  seconds: number;
}

interface Plan {
  db: BenchDatabaseKind;
  size: number;
  label: string;
  sql: string;
  plan: string;
}

interface Recording {
  app: App;
  queries: readonly CompiledQuery[];
  clear(): void;
}

function fail(what: string, res: LightMyRequestResponse): never {
  throw new Error(`${what}: HTTP ${res.statusCode} ${res.body.slice(0, 300)}`);
}

function operations(workspaceId: string, bearer: string, secrets: readonly SeededSecret[], seed: number): Operation[] {
  const size = secrets.length;
  const headers = { authorization: `Bearer ${bearer}` };
  const base = `/api/v1/workspaces/${workspaceId}/secrets`;
  const random = seededRandom(seed);
  const mid = Math.floor(size / 2);
  const afterMid = secrets[mid - 1] as SeededSecret;
  // The cursor the API itself issues after the item at mid - 1.
  const middleCursor = encodeCursor({ name: afterMid.name, id: afterMid.id });

  const listCheck = (what: string, firstName: string) => (res: LightMyRequestResponse) => {
    if (res.statusCode !== 200) fail(what, res);
    const body = res.json() as { items: { name: string }[] };
    if (body.items.length !== PAGE || body.items[0]?.name !== firstName) {
      throw new Error(`${what}: expected ${PAGE} items from ${firstName}, got ${body.items.length}`);
    }
  };

  return [
    {
      key: 'list-first',
      label: 'list, first page',
      gated: true,
      next: () => ({
        options: { method: 'GET', url: `${base}?limit=${PAGE}`, headers },
        check: listCheck('list first page', secretName(0)),
      }),
    },
    {
      key: 'list-middle',
      label: 'list, middle page (cursor)',
      gated: true,
      next: () => ({
        options: { method: 'GET', url: `${base}?limit=${PAGE}&cursor=${middleCursor}`, headers },
        check: listCheck('list middle page', secretName(mid)),
      }),
    },
    {
      key: 'reveal',
      label: 'reveal, random secret',
      gated: true,
      next: () => {
        const index = Math.floor(random() * size);
        const secret = secrets[index] as SeededSecret;
        return {
          options: { method: 'POST', url: `${base}/${secret.id}/reveal`, headers },
          check: (res) => {
            if (res.statusCode !== 200) fail('reveal', res);
            if ((res.json() as { value: string }).value !== secretValue(index)) {
              throw new Error(`reveal: wrong value for ${secret.name}`);
            }
          },
        };
      },
    },
    {
      key: 'search',
      label: `search ?q=${SEARCH} (info)`,
      gated: false,
      next: () => ({
        options: { method: 'GET', url: `${base}?limit=${PAGE}&q=${SEARCH}`, headers },
        check: listCheck('search', secretName(500)),
      }),
    },
  ];
}

async function measureOnce(server: BenchServer, op: Operation, n: number): Promise<number[]> {
  const samples: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const { options, check } = op.next();
    const t0 = performance.now();
    const res = await server.app.inject(options);
    samples[i] = performance.now() - t0;
    check(res);
  }
  return samples;
}

async function warmUp(server: BenchServer, op: Operation, requests: number): Promise<void> {
  const t0 = performance.now();
  for (let i = 0; i < requests; i++) {
    if (i >= 30 && performance.now() - t0 > (op.gated ? WARMUP_MAX_MS : INFO_WARMUP_MAX_MS)) break;
    const { options, check } = op.next();
    check(await server.app.inject(options));
  }
}

/** One request through a recording server: the SQL that `op` runs. */
async function captureQueries(recording: Recording, op: Operation): Promise<CompiledQuery[]> {
  recording.clear();
  const { options, check } = op.next();
  check(await recording.app.inject(options));
  return [...recording.queries];
}

async function sqlP50(server: BenchServer, queries: readonly CompiledQuery[], replays = SQL_REPLAYS): Promise<number> {
  const reads = replayable(queries);
  for (let i = 0; i < 20; i++) await replay(server.ctx.db, reads);
  const samples: number[] = [];
  for (let i = 0; i < replays; i++) samples.push(await replay(server.ctx.db, reads));
  return summarize(samples).p50;
}

async function runOnDatabase(
  kind: BenchDatabaseKind,
  sizes: number[],
  options: ScenarioOptions,
  out: { measurements: Measurement[]; loads: BulkLoad[]; plans: Plan[] },
): Promise<void> {
  progress(`secrets-scale: ${kind}: starting server`);
  const server = await startBenchServer(kind, {
    HUSH_REVEAL_LIMIT_PER_MIN: REVEAL_LIMIT,
    // The question is how the database path scales: every list is answered from the database.
    HUSH_LIST_CACHE_MB: '0',
  });
  try {
    const owner = await setupOwner(server);
    const rec = await recordingContext(server.ctx);
    const recordingApp = await server.build(rec.ctx);
    const recording: Recording = {
      app: recordingApp,
      clear: () => rec.recorder.clear(),
      queries: rec.recorder.queries,
    };
    const secrets: SeededSecret[] = [];
    try {
      for (const size of sizes) {
        const from = secrets.length;
        if (size > from) {
          const t0 = performance.now();
          let lastReport = 0;
          const added = await seedSecrets(server.ctx, {
            workspaceId: owner.workspaceId,
            userId: owner.userId,
            from,
            to: size,
            onBatch: (done) => {
              if (done - lastReport >= 20_000) {
                lastReport = done;
                progress(`secrets-scale: ${kind}: inserted ${count(from + done)} / ${count(size)}`);
              }
            },
          });
          for (const s of added) secrets.push(s);
          const seconds = (performance.now() - t0) / 1000;
          out.loads.push({ db: kind, from, to: size, seconds });
          progress(
            `secrets-scale: ${kind}: ${count(size - from)} secrets inserted in ${seconds.toFixed(1)} s (${count((size - from) / seconds)} rows/s)`,
          );
          await refreshStatistics(server.ctx);
        }

        const ops = operations(owner.workspaceId, owner.bearer, secrets, size);
        // The first size also warms V8 up (JIT, caches): without this the smallest
        // size is measured on colder code and the ratio looks better than it is.
        // After a bulk load a short warm-up is not enough either (measured: list
        // p50 +40 % at 100k with 50 warm-up requests, none with 300).
        const warmup = size === sizes[0] ? Math.max(options.warmup, FIRST_WARMUP) : options.warmup;
        for (const op of ops) await warmUp(server, op, warmup);
        const runs = new Map<OpKey, LatencySummary[]>(ops.map((op) => [op.key, []]));
        for (let rep = 0; rep < options.repetitions; rep++) {
          // Operations interleave, so a slow patch of the machine hits all of them.
          for (const op of ops) {
            const n = op.gated ? options.requests : Math.min(options.requests, INFO_REQUESTS);
            runs.get(op.key)?.push(summarize(await measureOnce(server, op, n)));
          }
        }

        for (const op of ops) {
          const queries = await captureQueries(recording, op);
          const stats = medianOfRuns(runs.get(op.key) ?? []);
          const measurement: Measurement = {
            db: kind,
            size,
            op: op.key,
            label: op.label,
            gated: op.gated,
            stats,
            sqlP50: await sqlP50(server, queries, op.gated ? SQL_REPLAYS : INFO_SQL_REPLAYS),
          };
          out.measurements.push(measurement);
          progress(
            `secrets-scale: ${kind} @ ${sizeLabel(size)}: ${op.label}: p50 ${ms(stats.p50)} ms, p95 ${ms(stats.p95)} ms, p99 ${ms(stats.p99)} ms, ${count(stats.reqPerSec)} req/s (SQL ${ms(measurement.sqlP50)} ms)`,
          );
          if (size === sizes.at(-1) && op.key !== 'reveal') {
            const main = queries.find((q) => /\bfrom\s+"secrets"/i.test(q.sql));
            if (main) {
              out.plans.push({
                db: kind,
                size,
                label: op.label,
                sql: describe(main),
                plan: await explain(server.ctx, main),
              });
            }
          }
        }
      }
    } finally {
      await recordingApp.close();
    }
  } finally {
    await server.close();
    progress(`secrets-scale: ${kind}: done, database removed`);
  }
}

const DB_LABEL: Record<BenchDatabaseKind, string> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };

function report(
  options: ScenarioOptions,
  sizes: number[],
  data: { measurements: Measurement[]; loads: BulkLoad[]; plans: Plan[] },
): ScenarioResult {
  const { measurements, loads, plans } = data;
  const smallest = sizes[0] as number;
  const largest = sizes.at(-1) as number;
  const find = (db: BenchDatabaseKind, size: number, op: OpKey) =>
    measurements.find((m) => m.db === db && m.size === size && m.op === op);
  const gates: ScenarioResult['gates'] = [];
  const ratioLabel = `${sizeLabel(largest)} / ${sizeLabel(smallest)}`;

  const summaryRows: string[][] = [];
  for (const db of options.databases) {
    for (const op of ['list-first', 'list-middle', 'reveal', 'search'] as const) {
      const small = find(db, smallest, op);
      const large = find(db, largest, op);
      if (!small || !large) continue;
      const ratio = large.stats.p50 / small.stats.p50;
      const passed = ratio <= MAX_RATIO;
      if (small.gated) {
        gates.push({
          name: `secrets-scale ${DB_LABEL[db]} ${small.label}`,
          passed,
          detail: `p50 ${ms(small.stats.p50)} → ${ms(large.stats.p50)} ms (${ratio.toFixed(2)}×)`,
        });
      }
      summaryRows.push([
        DB_LABEL[db],
        small.label,
        ...sizes.map((s) => ms(find(db, s, op)?.stats.p50 ?? Number.NaN)),
        `${ratio.toFixed(2)}×`,
        small.gated ? (passed ? '✅ pass' : '❌ FAIL') : 'not gated',
      ]);
    }
  }

  const detailRows = measurements.map((m) => [
    DB_LABEL[m.db],
    sizeLabel(m.size),
    m.label,
    ms(m.stats.p50),
    ms(m.stats.p95),
    ms(m.stats.p99),
    count(m.stats.reqPerSec),
    ms(m.sqlP50),
  ]);

  const loadRows = loads.map((l) => [
    DB_LABEL[l.db],
    `${sizeLabel(l.from)} → ${sizeLabel(l.to)}`,
    count(l.to - l.from),
    l.seconds.toFixed(1),
    count((l.to - l.from) / l.seconds),
  ]);

  const planBlocks = plans.map(
    (p) =>
      `**${DB_LABEL[p.db]}, ${sizeLabel(p.size)} secrets, ${p.label}**\n\n${codeBlock(p.sql, 'sql')}\n\n${codeBlock(p.plan)}`,
  );

  const allPassed = gates.every((g) => g.passed);
  const diagnosis: string[] = [];
  for (const db of options.databases) {
    for (const op of ['list-first', 'list-middle', 'reveal'] as const) {
      const small = find(db, smallest, op);
      const large = find(db, largest, op);
      if (!small || !large || large.stats.p50 / small.stats.p50 <= MAX_RATIO) continue;
      const httpGrowth = large.stats.p50 - small.stats.p50;
      const sqlGrowth = large.sqlP50 - small.sqlP50;
      const where =
        sqlGrowth >= httpGrowth / 2
          ? 'the growth is in the database query'
          : 'the query alone does not explain it: profile the Node side';
      diagnosis.push(
        `- **${DB_LABEL[db]}, ${small.label}**: p50 ${ms(small.stats.p50)} → ${ms(large.stats.p50)} ms over HTTP; the request's SQL alone ${ms(small.sqlP50)} → ${ms(large.sqlP50)} ms — ${where}.`,
      );
    }
  }
  const orCursor = plans.some((p) => /\bor\s*\(\s*"name"\s*=/i.test(p.sql));
  if (diagnosis.length > 0 && orCursor) {
    diagnosis.push(
      '',
      'Likely cause (as before commit df7cb5b): the keyset cursor is written `"name" > $2 or ("name" = $3 and "id" > $4)`. Neither engine turns that OR into an index range, so both seek only on `workspace_id` and read (then discard) every row before the cursor — see `Rows Removed by Filter` on PostgreSQL and an index search without `name>?` on SQLite in the plans below. Compare the row value instead: `eb(eb.refTuple(\'name\', \'id\'), \'>\', eb.tuple(after.name, after.id))`, served by the index on `(workspace_id, name, id)`.',
    );
  }
  const lines = [
    `Run ${machineLine(options.machine)}. Databases: ${options.databases.map((d) => DB_LABEL[d]).join(', ')}.`,
    '',
    `**Target:** p50 latency of list and reveal grows by at most ${MAX_RATIO}× from ${sizeLabel(smallest)} to ${sizeLabel(largest)} secrets in one workspace. **Result: ${allPassed ? 'pass' : 'FAIL'}.**`,
    '',
    `#### p50 latency (ms) by workspace size`,
    '',
    table(['database', 'operation', ...sizes.map((s) => sizeLabel(s)), ratioLabel, `≤ ${MAX_RATIO}×`], summaryRows, [
      'left',
      'left',
      ...sizes.map(() => 'right' as const),
      'right',
      'left',
    ]),
    '',
    ...(diagnosis.length > 0 ? ['#### Diagnosis', '', ...diagnosis, ''] : []),
    `#### Latency and throughput`,
    '',
    `In-process (\`app.inject\`), one request in flight. Each figure is the median over ${options.repetitions} repetitions of ${options.requests} requests (search: ${Math.min(options.requests, INFO_REQUESTS)}). *SQL p50* is the request's read queries replayed alone against the database (no HTTP, no serialisation).`,
    '',
    table(['database', 'secrets', 'operation', 'p50 ms', 'p95 ms', 'p99 ms', 'req/s', 'SQL p50 ms'], detailRows, [
      'left',
      'right',
      'left',
      'right',
      'right',
      'right',
      'right',
      'right',
    ]),
    '',
    `#### Bulk insert`,
    '',
    'Secrets written directly (multi-row INSERTs of 500, one transaction per step), each value encrypted with the workspace data key.',
    '',
    table(['database', 'step', 'rows', 'seconds', 'rows/s'], loadRows, ['left', 'left', 'right', 'right', 'right']),
    '',
    `#### Method (this scenario)`,
    '',
    `- One fresh database per engine (SQLite file in a temp dir; PostgreSQL \`hush_bench_<random>\`, dropped WITH (FORCE) at the end), migrated by Hush itself; setup through \`POST /api/v1/setup\`, then a personal API token; every measured request uses \`Authorization: Bearer\`.`,
    `- One workspace grows ${sizes.map((s) => sizeLabel(s)).join(' → ')} secrets named \`secret_000000\`…; rows as the secret service writes them (\`secrets\`, \`secret_versions\`, \`variable_names\`), values encrypted by \`encryptSecretValue\` under the workspace DEK. PostgreSQL gets \`ANALYZE\` after each step (what autovacuum would do shortly) and a \`CHECKPOINT\` (the load's pages written before the measured commits); SQLite is left without statistics, as Hush leaves it.`,
    `- Operations: **list, first page** \`GET …/secrets?limit=${PAGE}\`; **list, middle page** the same with the cursor the API issues after item N/2 − 1 (deeper at each size); **reveal** \`POST …/secrets/:id/reveal\` of a uniformly random secret (seeded), value checked; **search** \`?q=${SEARCH}\` (exactly ${PAGE} matches at every size) is reported for information only — a substring search cannot use an index.`,
    `- Per size and operation: ${options.warmup} warm-up requests after each bulk load (${Math.max(options.warmup, FIRST_WARMUP)} before the first size, to warm V8 up; cut short after ${WARMUP_MAX_MS / 1000} s for slow operations, ${INFO_WARMUP_MAX_MS / 1000} s for the search), then ${options.repetitions} repetitions × ${options.requests} sequential requests, interleaved across operations (the information-only search: ${Math.min(options.requests, INFO_REQUESTS)} requests per repetition and ${INFO_SQL_REPLAYS} SQL replays, to keep the whole suite within its 10-minute budget; it is not gated). Every response is checked (status, page contents, revealed value). Reveal runs with \`HUSH_REVEAL_LIMIT_PER_MIN=${REVEAL_LIMIT}\` (the configuration maximum) so the limiter never answers 429, and with \`HUSH_LIST_CACHE_MB=0\`: every list is read from the database and serialised (the page cache, on by default, would answer repeated pages without either; the **load** scenario measures it).`,
    `- Reveal writes one hash-chained audit event per call, as in production; the bulk-loaded secrets have no \`secret.created\` audit events.`,
    '',
    `<details><summary>Query plans at ${sizeLabel(largest)} secrets</summary>`,
    '',
    planBlocks.join('\n\n'),
    '',
    '</details>',
  ];
  return { markdown: lines.join('\n'), gates };
}

export const secretsScale: Scenario = {
  id: 'secrets-scale',
  title: 'Secrets at scale: list and reveal, 1k → 100k secrets per workspace',
  async run(given) {
    const options = given.requestsGiven ? given : { ...given, requests: GATED_REQUESTS };
    const sizes = [...(options.sizes ?? DEFAULT_SIZES)].sort((a, b) => a - b);
    if (sizes.length < 2 || (sizes[0] as number) < 1_000) {
      throw new Error('secrets-scale needs at least two sizes, the smallest ≥ 1000 (for the search page)');
    }
    const data = { measurements: [] as Measurement[], loads: [] as BulkLoad[], plans: [] as Plan[] };
    for (const kind of options.databases) await runOnDatabase(kind, sizes, options, data);
    return report(options, sizes, data);
  },
};
