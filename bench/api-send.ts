/**
 * Scenario "api-send": `POST /api/v1/workspaces/:ws/blocks/send` end to end
 * over real HTTP — the whole Hush server, listening on 127.0.0.1 — against
 * a minimal Fastify app with one POST route that forwards a GET with the
 * same header to the same upstream through undici. Target (issue "API
 * blocks and workflows"): Send request keeps at least 0.6× the forwarder's
 * requests per second.
 *
 * Both servers run in this process, as does the load generator (undici, a
 * fixed number of requests in flight); the upstream is the run's shared
 * child process (support/upstream.ts).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { type CompiledQuery, sql } from 'kysely';
import { Agent, request } from 'undici';
import { registerCleanup } from './support/cleanup.js';
import type { BenchDatabaseKind } from './support/databases.js';
import { type BenchServer, setupOwner, startBenchServer } from './support/hush.js';
import { closedLoop, type LoadRun, medianLoad, pairedRatio } from './support/load.js';
import { loadAverage, loadNote, machineLine } from './support/machine.js';
import { codeBlock, commandLines, count, ms, table } from './support/markdown.js';
import { samplePostgresWaits } from './support/pg-waits.js';
import { type ProfileSummary, profileMarkdown, profileWhile } from './support/profile.js';
import { progress } from './support/progress.js';
import { describe, recordingContext, replay, replayable } from './support/queries.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from './support/scenario.js';
import { median, seededRandom } from './support/stats.js';
import { type BenchUpstream, sharedUpstream, UPSTREAM_BODY_BYTES } from './support/upstream.js';
import { randomSecretValue } from './support/values.js';

const MIN_RATIO = 0.6;
const CONCURRENCY = 32;
/** Requests per repetition and server (a few seconds each on the reference machine). */
const TOTAL = 6_000;
const WARMUP = 2_000;
const SECRET_NAME = 'tok';
const SQL_REPLAYS = 200;

const DB_LABEL: Record<BenchDatabaseKind, string> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };

interface Target {
  key: 'forwarder' | 'hush';
  label: string;
  send(): Promise<void>;
}

interface Measured {
  db: BenchDatabaseKind;
  target: Target['key'];
  label: string;
  run: LoadRun;
  reps: LoadRun[];
  /** Throughput relative to the forwarder: median of the per-repetition ratios. */
  ratio: number;
  upstreamCpuUs: number;
}

interface SendSql {
  db: BenchDatabaseKind;
  queries: CompiledQuery[];
  /** p50 of the send's read queries replayed alone, ms. */
  readP50: number;
  /** Audit events written per Send, counted over one repetition. */
  auditPerSend: number;
}

interface Data {
  measured: Measured[];
  profiles: { db: BenchDatabaseKind; profile: ProfileSummary }[];
  sql: SendSql[];
  /** PostgreSQL: what Hush's connections were doing during the profiled run (state → share of samples). */
  pgWaits: { label: string; share: number }[];
  /** Size of Send's answer body (the forwarder's is UPSTREAM_BODY_BYTES). */
  sendResponseBytes: number;
}

/** The baseline: one route, one undici GET with the header, the upstream's body returned as is. */
async function startForwarder(upstreamUrl: string, authorization: string): Promise<FastifyInstance> {
  // Pool configured like Hush's outbound client (keep-alive 10 s, ≤ 128 connections).
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 128 });
  const app = Fastify({ logger: false });
  app.post('/forward', async (_request, reply) => {
    const res = await request(upstreamUrl, { method: 'GET', headers: { authorization }, dispatcher: agent });
    const text = await res.body.text();
    return reply.code(res.statusCode).type('application/json').send(text);
  });
  app.addHook('onClose', async () => {
    await agent.close();
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return app;
}

function portOf(app: FastifyInstance): number {
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('server is not listening on TCP');
  return address.port;
}

async function countAudit(server: BenchServer): Promise<number> {
  const row = await server.ctx.db
    .selectFrom('audit_events')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function runOnDatabase(
  kind: BenchDatabaseKind,
  options: ScenarioOptions,
  ctx: { upstream: BenchUpstream; value: string; payload: string; forwarderUrl: string; generator: Agent },
  data: Data,
): Promise<void> {
  const { upstream, value, payload, forwarderUrl, generator } = ctx;
  progress(`api-send: ${kind}: starting Hush`);
  const server = await startBenchServer(kind, { HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' });
  try {
    const owner = await setupOwner(server);
    const ws = `/api/v1/workspaces/${owner.workspaceId}`;
    const auth = { authorization: `Bearer ${owner.bearer}` };
    const created = await server.app.inject({
      method: 'POST',
      url: `${ws}/secrets`,
      headers: auth,
      payload: { name: SECRET_NAME, visibility: 'masked', value, allowedHosts: ['127.0.0.1'] },
    });
    if (created.statusCode !== 201) throw new Error(`secret creation failed: ${created.statusCode} ${created.body}`);
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    const sendUrl = `http://127.0.0.1:${portOf(server.app)}${ws}/blocks/send`;
    const headers = { ...auth, 'content-type': 'application/json' };
    const echoed = `Bearer [secret:${SECRET_NAME}]`;

    const targets: Target[] = [
      {
        key: 'forwarder',
        label: 'minimal Fastify + undici forwarder (baseline)',
        async send() {
          const res = await request(forwarderUrl, { method: 'POST', headers, body: payload, dispatcher: generator });
          const text = await res.body.text();
          if (res.statusCode !== 200 || text.length !== UPSTREAM_BODY_BYTES || !text.includes(value)) {
            throw new Error(`forwarder: unexpected answer ${res.statusCode} ${text.slice(0, 200)}`);
          }
        },
      },
      {
        key: 'hush',
        label: 'Hush `POST …/blocks/send`',
        async send() {
          const res = await request(sendUrl, { method: 'POST', headers, body: payload, dispatcher: generator });
          const text = await res.body.text();
          if (
            res.statusCode !== 200 ||
            !text.startsWith('{"ok":true') ||
            !text.includes(echoed) ||
            text.includes(value)
          ) {
            throw new Error(`send: unexpected answer ${res.statusCode} ${text.slice(0, 300)}`);
          }
          data.sendResponseBytes = Buffer.byteLength(text);
        },
      },
    ];

    const warmup = Math.max(options.warmup, WARMUP);
    for (const t of targets) {
      progress(`api-send: ${kind}: warm-up ${t.key} (${count(warmup)} requests)`);
      await closedLoop(warmup, CONCURRENCY, t.send);
    }
    const total = options.requestsGiven ? options.requests : TOTAL;
    const runs = new Map<Target['key'], { load: LoadRun[]; upstreamCpu: number[] }>(
      targets.map((t) => [t.key, { load: [], upstreamCpu: [] }]),
    );
    let auditPerSend = Number.NaN;
    for (let rep = 0; rep < options.repetitions; rep++) {
      for (const t of rep % 2 === 0 ? targets : [...targets].reverse()) {
        const audit0 = t.key === 'hush' ? await countAudit(server) : 0;
        const before = await upstream.stats();
        const run = await closedLoop(total, CONCURRENCY, t.send);
        const after = await upstream.stats();
        if (after.served - before.served !== total) {
          throw new Error(`api-send: the upstream served ${after.served - before.served} of ${total} requests`);
        }
        if (t.key === 'hush') auditPerSend = ((await countAudit(server)) - audit0) / total;
        const entry = runs.get(t.key);
        entry?.load.push(run);
        entry?.upstreamCpu.push((after.cpuUs - before.cpuUs) / total);
        progress(
          `api-send: ${kind}: rep ${rep + 1} ${t.key}: ${count(run.reqPerSec)} req/s, p50 ${ms(run.p50)} ms, ${count(run.cpuUsPerRequest)} µs CPU/req`,
        );
      }
    }
    const baseReps = runs.get('forwarder')?.load ?? [];
    for (const t of targets) {
      const entry = runs.get(t.key) ?? { load: [], upstreamCpu: [] };
      data.measured.push({
        db: kind,
        target: t.key,
        label: t.label,
        run: medianLoad(entry.load),
        reps: entry.load,
        ratio: pairedRatio(entry.load, baseReps),
        upstreamCpuUs: median(entry.upstreamCpu),
      });
    }

    progress(`api-send: ${kind}: profiling one more Send run`);
    const hush = targets.find((t) => t.key === 'hush') as Target;
    const profiled = profileWhile(`api-send-${kind}`, () => closedLoop(Math.ceil(total / 2), CONCURRENCY, hush.send));
    if (kind === 'postgres') {
      const { rows } = await sql<{ db: string }>`select current_database() as db`.execute(server.ctx.db);
      data.pgWaits = await samplePostgresWaits(rows[0]?.db ?? '', profiled);
    }
    const { profile } = await profiled;
    data.profiles.push({ db: kind, profile });

    // The SQL one Send runs, through a second server on a recording context.
    const rec = await recordingContext(server.ctx);
    const recordingApp = await server.build(rec.ctx);
    try {
      rec.recorder.clear();
      const res = await recordingApp.inject({ method: 'POST', url: `${ws}/blocks/send`, headers, payload });
      if (res.statusCode !== 200) throw new Error(`recorded send failed: ${res.statusCode} ${res.body}`);
      const queries = [...rec.recorder.queries];
      const reads = replayable(queries);
      for (let i = 0; i < 20; i++) await replay(server.ctx.db, reads);
      const samples: number[] = [];
      for (let i = 0; i < SQL_REPLAYS; i++) samples.push(await replay(server.ctx.db, reads));
      data.sql.push({ db: kind, queries, readP50: median(samples), auditPerSend });
    } finally {
      await recordingApp.close();
    }
  } finally {
    await server.close();
    progress(`api-send: ${kind}: done, database removed`);
  }
}

export const apiSend: Scenario = {
  id: 'api-send',
  title: 'API blocks: Send request end to end vs a minimal Fastify forwarder',
  async run(options) {
    const loadAtStart = loadAverage();
    const upstream = await sharedUpstream();
    const value = randomSecretValue(seededRandom(2027));
    const forwarder = await startForwarder(upstream.url, `Bearer ${value}`);
    const generator = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 30_000 });
    const stop = registerCleanup(async () => {
      await forwarder.close();
      await generator.close();
    });
    const block = {
      id: 'call',
      type: 'api',
      method: 'GET',
      url: upstream.url,
      headers: [{ key: 'Authorization', value: `Bearer {{secret:${SECRET_NAME}}}` }],
    };
    // Both servers get the same request body; the forwarder ignores it.
    const payload = JSON.stringify({ block });
    const data: Data = { measured: [], profiles: [], sql: [], pgWaits: [], sendResponseBytes: 0 };
    try {
      const forwarderUrl = `http://127.0.0.1:${portOf(forwarder)}/forward`;
      for (const kind of options.databases) {
        await runOnDatabase(kind, options, { upstream, value, payload, forwarderUrl, generator }, data);
      }
    } finally {
      await stop();
    }
    return report(options, data, payload, { start: loadAtStart, end: loadAverage() });
  },
};

function report(
  options: ScenarioOptions,
  data: Data,
  payload: string,
  load: { start: number; end: number },
): ScenarioResult {
  const gates: ScenarioResult['gates'] = [];
  const rows: string[][] = [];
  const verdicts: string[] = [];
  for (const db of options.databases) {
    const base = data.measured.find((m) => m.db === db && m.target === 'forwarder');
    const hush = data.measured.find((m) => m.db === db && m.target === 'hush');
    if (!base || !hush) continue;
    const ratio = hush.ratio;
    const passed = ratio >= MIN_RATIO;
    gates.push({
      name: `api-send ${DB_LABEL[db]} Send request vs forwarder`,
      passed,
      detail: `${count(hush.run.reqPerSec)} vs ${count(base.run.reqPerSec)} req/s (${ratio.toFixed(2)}×, target ≥ ${MIN_RATIO}×)`,
    });
    verdicts.push(`${DB_LABEL[db]} ${ratio.toFixed(2)}× ${passed ? '(pass)' : '(FAIL)'}`);
    for (const m of [base, hush]) {
      const r = m.ratio;
      rows.push([
        DB_LABEL[db],
        m.label,
        count(m.run.reqPerSec),
        `${r.toFixed(2)}×`,
        m === hush ? (passed ? '✅ pass' : '❌ FAIL') : '',
        ms(m.run.p50),
        ms(m.run.p99),
        count(m.run.cpuUsPerRequest),
        count(m.upstreamCpuUs),
      ]);
    }
  }
  const cpuRatios = options.databases.flatMap((db) => {
    const base = data.measured.find((m) => m.db === db && m.target === 'forwarder');
    const hush = data.measured.find((m) => m.db === db && m.target === 'hush');
    return base && hush
      ? [`${DB_LABEL[db]} ${(base.run.cpuUsPerRequest / hush.run.cpuUsPerRequest).toFixed(2)}× of the forwarder`]
      : [];
  });
  const allPassed = gates.every((g) => g.passed);
  const total = data.measured[0] ? data.measured[0].run.requests / options.repetitions : TOTAL;

  const sqlRows = data.sql.map((s) => {
    const reads = replayable(s.queries).length;
    return [
      DB_LABEL[s.db],
      String(s.queries.length),
      String(reads),
      String(s.queries.length - reads),
      ms(s.readP50),
      Number.isFinite(s.auditPerSend) ? s.auditPerSend.toFixed(2) : 'n/a',
    ];
  });
  const sqlBlocks = data.sql.map(
    (s) => `**${DB_LABEL[s.db]}**\n\n${codeBlock(s.queries.map((q) => describe(q)).join('\n\n'), 'sql')}`,
  );
  const profileBlocks = data.profiles.map(
    (p) => `##### ${DB_LABEL[p.db]}\n\n${profileMarkdown(p.profile, Math.ceil(total / 2))}`,
  );

  const lines = [
    `Run ${machineLine(options.machine)}. Databases: ${options.databases.map((d) => DB_LABEL[d]).join(', ')}.`,
    '',
    `**Target:** \`POST …/blocks/send\` end to end reaches ≥ ${MIN_RATIO}× the throughput of a minimal Fastify route that forwards the same call with undici. **Result: ${allPassed ? 'pass' : 'FAIL'} — ${verdicts.join(', ')}.**`,
    '',
    table(
      [
        'database',
        'server',
        'req/s',
        'vs forwarder',
        `≥ ${MIN_RATIO}×`,
        'p50 ms',
        'p99 ms',
        'bench CPU µs/req',
        'upstream CPU µs/req',
      ],
      rows,
      ['left', 'left', 'right', 'right', 'left', 'right', 'right', 'right', 'right'],
    ),
    '',
    `${CONCURRENCY} requests in flight over real HTTP; each figure is the median of ${options.repetitions} repetitions × ${count(total)} requests per server; *vs forwarder* is the median of the per-repetition ratios (each repetition runs both servers back to back). *bench CPU* is this process's CPU time per request — load generator and server together, as both live here (by CPU cost alone: ${cpuRatios.join(', ')}); *upstream CPU* is the upstream process's. PostgreSQL's own CPU time is not included. The forwarder is measured next to each database's Hush (same conditions), so it has one row per database.`,
    '',
    '<details><summary>Every repetition (req/s)</summary>',
    '',
    table(
      ['database', 'repetition', 'forwarder', 'Hush', 'Hush / forwarder'],
      data.measured
        .filter((m) => m.target === 'hush')
        .flatMap((h) => {
          const f = data.measured.find((m) => m.db === h.db && m.target === 'forwarder');
          return h.reps.map((r, i) => [
            DB_LABEL[h.db],
            String(i + 1),
            count(f?.reps[i]?.reqPerSec ?? Number.NaN),
            count(r.reqPerSec),
            `${(r.reqPerSec / (f?.reps[i]?.reqPerSec ?? Number.NaN)).toFixed(2)}×`,
          ]);
        }),
      ['left', 'right', 'right', 'right', 'right'],
    ),
    '',
    '</details>',
    '',
    '#### What one Send does in the database',
    '',
    table(
      ['database', 'SQL statements', 'reads', 'writes', 'reads replayed alone, p50 ms', 'audit events per Send'],
      sqlRows,
      ['left', 'right', 'right', 'right', 'right', 'right'],
    ),
    '',
    `<details><summary>The SQL of one Send</summary>`,
    '',
    sqlBlocks.join('\n\n'),
    '',
    '</details>',
    '',
    ...(allPassed ? [] : diagnosis(data, Math.ceil(total / 2))),
    ...(data.pgWaits.length > 0
      ? [
          "#### PostgreSQL: what Hush's connections were waiting on",
          '',
          `\`pg_stat_activity\` of the benchmark database sampled every 20 ms during the profiled run (pool of 10 connections; share of connection-samples). \`Lock: transactionid\` / \`Lock: tuple\` is a transaction waiting for another one's row lock — here the workspace's audit-chain head (\`audit_heads\`, read \`FOR UPDATE\` by every audited write); \`IO: WALSync\` is a commit's fsync; \`Client: ClientRead\` is PostgreSQL waiting for Hush's next statement.`,
          '',
          table(
            ['connection state or wait event', 'share'],
            data.pgWaits.map((w) => [w.label, `${(w.share * 100).toFixed(1)} %`]),
            ['left', 'right'],
          ),
          '',
        ]
      : []),
    `#### Where the time goes`,
    '',
    `CPU profile of this process during one extra, unmeasured Send run of ${count(Math.ceil(total / 2))} requests per database; the load generator (undici) is in the same process and appears too.`,
    '',
    profileBlocks.join('\n\n'),
    '',
    `#### Method (this scenario)`,
    '',
    `- **Hush**: the real server built like the other scenarios (\`loadConfig\` → \`createAppContext\` → \`buildServer\`, fresh database per engine, \`HUSH_LOG_LEVEL=silent\`, \`HUSH_OUTBOUND_ALLOW_CIDRS=127.0.0.0/8\`), **listening on 127.0.0.1** on a random port. Setup through the API: first-run setup, a personal API token, then \`POST …/secrets\` \`{name: '${SECRET_NAME}', visibility: 'masked', value: <24 random characters>, allowedHosts: ['127.0.0.1']}\`. Each measured request is \`POST /api/v1/workspaces/:ws/blocks/send\` with \`Authorization: Bearer hush_…\` and the body \`${payload.replace(/http:\/\/127\.0\.0\.1:\d+/, 'http://127.0.0.1:<port>')}\`: authentication, membership, validation, the secret loaded and decrypted, the allowed-host check, the call, redaction, \`secret.used\` audit event and last-used update, the serialised result. Every answer is checked (200, \`ok: true\`, the echoed header as \`${`Bearer [secret:${SECRET_NAME}]`}\`, the value nowhere).`,
    `- **Baseline**: a bare \`Fastify({ logger: false })\` with one \`POST /forward\` route that sends \`GET <upstream>\` with \`Authorization: Bearer <value>\` through an undici \`Agent\` (configured like Hush's outbound client) and returns the upstream body. It receives the same request body (and ignores it); its answer is checked (200, ${UPSTREAM_BODY_BYTES} bytes, the echoed value).`,
    `- Same upstream for both (the run's shared child process answering ${UPSTREAM_BODY_BYTES} bytes of JSON that echo Authorization; its request counter is checked after every repetition); same load generator: undici \`request()\` through one \`Agent\` (${CONCURRENCY} connections per server), ${CONCURRENCY} closed loops, req/s = requests ÷ wall time. ${Math.max(options.warmup, WARMUP)} warm-up requests per server, then ${options.repetitions} repetitions alternating which server goes first.`,
    `- SQLite is the reference engine for this target${options.databases.includes('postgres') ? '; PostgreSQL runs too, on the local server (pool of 10)' : ''}. The machine has ${options.machine.cores} cores: the bench process (load generator and servers on one event loop) and the upstream process share them, so absolute req/s are modest and machine-specific; the ratio compares the two servers under identical conditions.`,
    loadNote(options.machine.cores, load.start, load.end),
    ...commandLines('api-send'),
  ];
  return { markdown: lines.join('\n'), gates };
}

/** Why Send misses the target, from this run's profiles and samples (shown only when it does). */
function diagnosis(data: Data, profiledRequests: number): string[] {
  const perRequest = (msTotal: number | undefined) =>
    msTotal === undefined ? 'n/a' : `${((msTotal * 1000) / profiledRequests).toFixed(0)} µs`;
  const lines = ['#### Diagnosis', ''];
  for (const db of ['sqlite', 'postgres'] as const) {
    const hush = data.measured.find((m) => m.db === db && m.target === 'hush');
    const base = data.measured.find((m) => m.db === db && m.target === 'forwarder');
    const profile = data.profiles.find((p) => p.db === db)?.profile;
    if (!hush || !base || !profile) continue;
    const area = (prefix: string) => profile.areas.find((a) => a.label.startsWith(prefix))?.ms;
    const exact = (label: string) => profile.areas.find((a) => a.label === label)?.ms ?? 0;
    const fn = (name: string) => profile.srcFunctions.find((f) => f.label.startsWith(name))?.ms;
    const sql = data.sql.find((q) => q.db === db);
    const head = `- **${DB_LABEL[db]}:** a Send costs this process ${count(hush.run.cpuUsPerRequest)} µs of CPU against ${count(base.run.cpuUsPerRequest)} µs for the forwarder (load generator included in both); ${sql ? `${sql.queries.length} SQL statements per Send, ${sql.queries.length - replayable(sql.queries).length} of them writes in one transaction` : ''}.`;
    lines.push(head);
    if (db === 'sqlite') {
      lines.push(
        `  - SQLite itself (better-sqlite3's native run/all, synchronous on the event loop): ${perRequest(area('SQLite engine'))} per Send, Kysely building the queries ${perRequest(area('npm: kysely'))}. A warm Send reads one row (the workspace's change epoch); its \`secret.used\` event and \`lastUsedAt\` go into a group-committed transaction shared with the Sends of the same event-loop turn.`,
      );
    } else {
      const waits = (prefix: string) =>
        data.pgWaits.filter((w) => w.label.startsWith(prefix)).reduce((sum, w) => sum + w.share, 0);
      lines.push(
        `  - Sampled during the run, Hush's connections spent ${(waits('Client: ClientRead') * 100).toFixed(0)} % of the time waiting for Hush's next statement (\`ClientRead\`), ${(waits('Lock') * 100).toFixed(0)} % on row locks and ${(waits('IO: WALSync') * 100).toFixed(0)} % in WAL fsync: this process, not the database, is the limit. Node.js core — sockets to PostgreSQL, the upstream and the load generator, HTTP, crypto — takes ${perRequest(area('Node.js core'))} per Send, pg and pg-protocol ${perRequest(exact('npm: pg') + exact('npm: pg-protocol') + exact('npm: pg-pool'))}, Kysely ${perRequest(area('npm: kysely'))}.`,
      );
    }
    lines.push(
      `  - Hush's own work per Send: \`executeApiBlock\` ${perRequest(fn('executeApiBlock'))} (of which the outbound call ${perRequest(fn('send — src/runtime/outbound'))}, the run's \`Redactor\` ${perRequest(fn('Redactor'))}), the secret's decryption ${perRequest(fn('decryptSecretValue'))}, the token ${perRequest(fn('resolveApiToken'))}, the audit append ${perRequest(fn('appendToChain'))}.`,
    );
  }
  lines.push(
    '',
    '*Done already* (src/): prepared statements are reused on SQLite; the token, membership, variables and the secret row with its ciphertext are cached per workspace and validated by one epoch read; `secret.used` is group-committed with one chain-head lock per batch (on PostgreSQL one statement per batch at the head the server knows, and every statement with parameters prepared once per connection); id randomness is pooled; no timer per request. *Left*: what remains is spread thin — HTTP and crypto in Node.js core, zod validation and serialisation of a larger answer, a decryption (plaintext is never cached, SPEC §3), rendering, redaction and the audit hash chain. 0.6× of a route that only forwards leaves a Send about the cost of one loopback HTTP request for all of it; the figures above show how far off that is, and no single step is large enough to close it.',
    '',
  );
  return lines;
}
