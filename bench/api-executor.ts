/**
 * Scenario "api-executor": throughput of the API-block executor
 * (`executeApiBlock`) against plain undici requests to the same local
 * upstream, one secret in an Authorization header, a 1 KiB response that
 * echoes it. Target (issue "API blocks and workflows"): the executor keeps
 * at least 0.8× the requests per second of plain undici.
 *
 * Both clients run in this process at the same concurrency against the
 * shared upstream child process (support/upstream.ts). The executor is
 * called as the run service calls it, with an in-memory secret and host
 * check instead of the database (the database is api-send's subject).
 */
import { BlockList } from 'node:net';
import { Agent, request } from 'undici';
import type { ExecutionEnv, SecretMaterial } from '../src/runtime/executor.js';
import { registerCleanup } from './support/cleanup.js';
import { compiled } from './support/compiled.js';
import { closedLoop, type LoadRun, medianLoad, pairedRatio } from './support/load.js';
import { loadAverage, loadNote, machineLine } from './support/machine.js';
import { commandLines, count, ms, table } from './support/markdown.js';
import { asyncMicroCost, microCost } from './support/micro.js';
import { type ProfileSummary, profileMarkdown, profileWhile } from './support/profile.js';
import { progress } from './support/progress.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from './support/scenario.js';
import { median, seededRandom } from './support/stats.js';
import { sharedUpstream, UPSTREAM_BODY_BYTES } from './support/upstream.js';
import { randomSecretValue } from './support/values.js';

const MIN_RATIO = 0.8;
const CONCURRENCY = 32;
/** Requests per repetition and client (a few seconds each on the reference machine). */
const TOTAL = 20_000;
const WARMUP = 6_000;
const SECRET_NAME = 'tok';

interface Client {
  key: 'undici' | 'outbound' | 'executor';
  label: string;
  send(): Promise<void>;
}

interface MicroCost {
  key: 'forms' | 'redactor' | 'redact' | 'analyze' | 'executor';
  label: string;
  us: number;
}

interface Measured {
  client: Client;
  run: LoadRun;
  /** Every repetition, in order. */
  reps: LoadRun[];
  /** Throughput relative to plain undici: median of the per-repetition ratios. */
  ratio: number;
  /** Upstream CPU per request, µs (median over repetitions). */
  upstreamCpuUs: number;
}

/** The executor and its parts as shipped (support/compiled.ts). */
async function executorModules() {
  const [blockSchema, blockFields, executor, outbound, redactor, forms] = await Promise.all([
    compiled<typeof import('../src/modules/workflows/block-schema.js')>('modules/workflows/block-schema.js'),
    compiled<typeof import('../src/runtime/block-fields.js')>('runtime/block-fields.js'),
    compiled<typeof import('../src/runtime/executor.js')>('runtime/executor.js'),
    compiled<typeof import('../src/runtime/outbound.js')>('runtime/outbound.js'),
    compiled<typeof import('../src/runtime/redactor.js')>('runtime/redactor.js'),
    compiled<typeof import('../src/runtime/secret-forms.js')>('runtime/secret-forms.js'),
  ]);
  return {
    apiBlockSchema: blockSchema.apiBlockSchema,
    analyzeBlock: blockFields.analyzeBlock,
    DEFAULT_MAX_RESPONSE_BYTES: executor.DEFAULT_MAX_RESPONSE_BYTES,
    executeApiBlock: executor.executeApiBlock,
    createOutboundClient: outbound.createOutboundClient,
    Redactor: redactor.Redactor,
    secretForms: forms.secretForms,
  };
}

export const apiExecutor: Scenario = {
  id: 'api-executor',
  title: 'API blocks: executor throughput vs plain undici (one secret, 1 KiB echoed response)',
  async run(options) {
    const loadAtStart = loadAverage();
    const {
      apiBlockSchema,
      analyzeBlock,
      DEFAULT_MAX_RESPONSE_BYTES,
      executeApiBlock,
      createOutboundClient,
      Redactor,
      secretForms,
    } = await executorModules();
    const upstream = await sharedUpstream();
    const value = randomSecretValue(seededRandom(2026));
    const header = `Bearer ${value}`;
    const redacted = `"authorization":"Bearer [secret:${SECRET_NAME}]"`;
    const material: SecretMaterial = { id: 'sec_bench', name: SECRET_NAME, value, allowedHosts: ['127.0.0.1'] };

    const allow = new BlockList();
    allow.addSubnet('127.0.0.0', 8, 'ipv4');
    const outbound = createOutboundClient({ allow });
    // The baseline pool is configured like the outbound client's (keep-alive 10 s, ≤ 128 connections).
    const agent = new Agent({ keepAliveTimeout: 10_000, connections: 128 });
    const closeClients = registerCleanup(async () => {
      await outbound.close();
      await agent.close();
    });

    const block = apiBlockSchema.parse({
      id: 'call',
      type: 'api',
      method: 'GET',
      url: upstream.url,
      headers: [{ key: 'Authorization', value: `Bearer {{secret:${SECRET_NAME}}}` }],
    });
    const upstreamUrl = new URL(upstream.url);
    const env: ExecutionEnv = {
      variables: new Map(),
      loadSecret: async () => material,
      checkHost: async () => true,
      // As in a workspace whose only secret is bound to the upstream's host.
      hostSecrets: async () => [material],
      client: outbound,
    };

    const clients: Client[] = [
      {
        key: 'undici',
        label: 'plain undici `request()` (baseline)',
        async send() {
          const res = await request(upstream.url, {
            method: 'GET',
            headers: { authorization: header },
            dispatcher: agent,
          });
          const text = await res.body.text();
          if (res.statusCode !== 200 || text.length !== UPSTREAM_BODY_BYTES || !text.includes(value)) {
            throw new Error(`undici: unexpected answer ${res.statusCode} (${text.length} bytes)`);
          }
        },
      },
      {
        key: 'outbound',
        label: 'Hush outbound client `send()` alone (info)',
        async send() {
          const res = await outbound.send({
            method: 'GET',
            url: upstreamUrl,
            headers: [['Authorization', header]],
            timeoutMs: block.timeoutMs,
            maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES,
          });
          const text = res.body.toString('utf8');
          if (res.status !== 200 || text.length !== UPSTREAM_BODY_BYTES || !text.includes(value)) {
            throw new Error(`outbound: unexpected answer ${res.status} (${text.length} bytes)`);
          }
        },
      },
      {
        key: 'executor',
        label: '`executeApiBlock` (Hush)',
        async send() {
          const r = await executeApiBlock(block, env);
          const body = r.response?.body ?? '';
          if (!r.ok || r.response?.status !== 200 || !body.includes(redacted) || body.includes(value)) {
            throw new Error(`executor: unexpected result ${JSON.stringify(r.error ?? r.response?.status)}`);
          }
        },
      },
    ];

    try {
      const warmup = Math.max(options.warmup, WARMUP);
      for (const c of clients) {
        progress(`api-executor: warm-up ${c.key} (${count(warmup)} requests)`);
        await closedLoop(warmup, CONCURRENCY, c.send);
      }
      const total = options.requestsGiven ? options.requests : TOTAL;
      const runs = new Map<Client['key'], { load: LoadRun[]; upstreamCpu: number[] }>(
        clients.map((c) => [c.key, { load: [], upstreamCpu: [] }]),
      );
      for (let rep = 0; rep < options.repetitions; rep++) {
        // Alternate the order so neither client always runs on a warmer machine.
        for (const c of rep % 2 === 0 ? clients : [...clients].reverse()) {
          const before = await upstream.stats();
          const run = await closedLoop(total, CONCURRENCY, c.send);
          const after = await upstream.stats();
          if (after.served - before.served !== total) {
            throw new Error(`api-executor: the upstream served ${after.served - before.served} of ${total} requests`);
          }
          const entry = runs.get(c.key);
          entry?.load.push(run);
          entry?.upstreamCpu.push((after.cpuUs - before.cpuUs) / total);
          progress(
            `api-executor: rep ${rep + 1} ${c.key}: ${count(run.reqPerSec)} req/s, p50 ${ms(run.p50)} ms, ${count(run.cpuUsPerRequest)} µs CPU/req`,
          );
        }
      }
      const baseReps = runs.get('undici')?.load ?? [];
      const measured: Measured[] = clients.map((c) => {
        const entry = runs.get(c.key) ?? { load: [], upstreamCpu: [] };
        return {
          client: c,
          run: medianLoad(entry.load),
          reps: entry.load,
          ratio: pairedRatio(entry.load, baseReps),
          upstreamCpuUs: median(entry.upstreamCpu),
        };
      });

      progress('api-executor: profiling one more executor run');
      const executor = clients.find((c) => c.key === 'executor') as Client;
      const { profile } = await profileWhile('api-executor', () =>
        closedLoop(Math.ceil(total / 2), CONCURRENCY, executor.send),
      );

      progress("api-executor: per-call costs of the executor's steps");
      // One real answer of the upstream, replayed by a stub client: the executor without I/O.
      const sample = await outbound.send({
        method: 'GET',
        url: upstreamUrl,
        headers: [['Authorization', header]],
        timeoutMs: block.timeoutMs,
        maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES,
      });
      const responseBody = sample.body.toString('utf8');
      const stubEnv: ExecutionEnv = { ...env, client: { ...outbound, send: async () => sample } };
      const executorAlone = await asyncMicroCost(async () => {
        const r = await executeApiBlock(block, stubEnv);
        if (!r.response?.body.includes(redacted)) throw new Error('executor (stub client): unexpected result');
      });
      const redactor = new Redactor([{ name: SECRET_NAME, value }]);
      const micro: MicroCost[] = [
        { key: 'forms', label: '`secretForms(value)` (24 characters)', us: microCost(() => secretForms(value)) },
        {
          key: 'redactor',
          label: '`new Redactor([secret])` (includes secretForms)',
          us: microCost(() => new Redactor([{ name: SECRET_NAME, value }])),
        },
        {
          key: 'redact',
          label: `\`redactor.redact(body)\` (the ${UPSTREAM_BODY_BYTES}-byte response)`,
          us: microCost(() => redactor.redact(responseBody)),
        },
        {
          key: 'analyze',
          label: '`analyzeBlock(block)` (parses the templates; render runs it)',
          us: microCost(() => analyzeBlock(block)),
        },
        {
          key: 'executor',
          label: '`executeApiBlock` with a stub client replaying the same answer (the executor without I/O)',
          us: executorAlone,
        },
      ];
      return report(options, total, measured, profile, micro, { start: loadAtStart, end: loadAverage() });
    } finally {
      await closeClients();
    }
  },
};

function report(
  options: ScenarioOptions,
  total: number,
  measured: Measured[],
  profile: ProfileSummary,
  micro: MicroCost[],
  load: { start: number; end: number },
): ScenarioResult {
  const base = measured.find((m) => m.client.key === 'undici') as Measured;
  const exec = measured.find((m) => m.client.key === 'executor') as Measured;
  const ratio = exec.ratio;
  const passed = ratio >= MIN_RATIO;
  const gates: ScenarioResult['gates'] = [
    {
      name: 'api-executor throughput vs plain undici',
      passed,
      detail: `${count(exec.run.reqPerSec)} vs ${count(base.run.reqPerSec)} req/s (${ratio.toFixed(2)}×, target ≥ ${MIN_RATIO}×)`,
    },
  ];
  const rows = measured.map((m) => [
    m.client.label,
    count(m.run.reqPerSec),
    `${m.ratio.toFixed(2)}×`,
    ms(m.run.p50),
    ms(m.run.p99),
    count(m.run.cpuUsPerRequest),
    count(m.upstreamCpuUs),
  ]);
  const extraCpu = exec.run.cpuUsPerRequest - base.run.cpuUsPerRequest;
  const lines = [
    `Run ${machineLine(options.machine)}.`,
    '',
    `**Target:** \`executeApiBlock\` with one secret and a ${UPSTREAM_BODY_BYTES}-byte echoed response reaches ≥ ${MIN_RATIO}× the throughput of plain undici requests to the same upstream. **Result: ${passed ? 'pass' : 'FAIL'} — ${ratio.toFixed(2)}×.**`,
    '',
    table(['client', 'req/s', 'vs undici', 'p50 ms', 'p99 ms', 'bench CPU µs/req', 'upstream CPU µs/req'], rows, [
      'left',
      'right',
      'right',
      'right',
      'right',
      'right',
      'right',
    ]),
    '',
    `${CONCURRENCY} requests in flight; each figure is the median of ${options.repetitions} repetitions × ${count(total)} requests per client; *vs undici* is the median of the per-repetition ratios (each repetition runs the clients back to back). *bench CPU* is this process's CPU time (all its threads) per request: the executor costs ${count(extraCpu)} µs more per request than a plain request — by CPU cost alone (steadier when other processes load the machine) the executor reaches ${(base.run.cpuUsPerRequest / exec.run.cpuUsPerRequest).toFixed(2)}× of undici; *upstream CPU* is the upstream process's.`,
    '',
    '<details><summary>Every repetition (req/s)</summary>',
    '',
    table(
      ['repetition', ...measured.map((m) => m.client.label), 'executor / undici'],
      base.reps.map((b, i) => [
        String(i + 1),
        ...measured.map((m) => count(m.reps[i]?.reqPerSec ?? Number.NaN)),
        `${((exec.reps[i]?.reqPerSec ?? Number.NaN) / b.reqPerSec).toFixed(2)}×`,
      ]),
      ['right', ...measured.map(() => 'right' as const), 'right'],
    ),
    '',
    '</details>',
    '',
    ...(passed ? [] : diagnosis(base, measured, micro)),
    `#### Where the executor's time goes`,
    '',
    'Per-call cost of the steps an execution repeats, measured alone in a loop, one call at a time (µs, median of 5 batches; no I/O):',
    '',
    table(
      ['step', 'µs per call'],
      micro.map((m) => [m.label, m.us.toFixed(2)]),
      ['left', 'right'],
    ),
    '',
    `CPU profile of this process during one extra, unmeasured executor run of ${count(Math.ceil(total / 2))} requests (includes the undici client and the load loop, which the baseline has too).`,
    '',
    profileMarkdown(profile, Math.ceil(total / 2)),
    '',
    `#### Method (this scenario)`,
    '',
    `- Upstream: one node:http server on 127.0.0.1 in a **child process**, shared by every scenario of the run; each response is a ${UPSTREAM_BODY_BYTES}-byte JSON object echoing the request's Authorization header. The upstream's request counter is checked after every repetition (every request reached it).`,
    `- **Baseline:** undici \`request()\` through an \`Agent\` (keep-alive 10 s, up to 128 connections, as Hush's outbound client) with \`Authorization: Bearer <value>\`, body read fully as text, status and body checked.`,
    `- **Hush:** \`executeApiBlock(block, env)\` — block \`GET <upstream>\` with header \`Authorization: Bearer {{secret:${SECRET_NAME}}}\` (defaults filled by \`apiBlockSchema\`), a 24-character secret from \`loadSecret\` in memory (and from \`hostSecrets\`, the secrets bound to the upstream's host), \`checkHost\` always true, the real \`createOutboundClient\` (SSRF guard allowing 127.0.0.0/8; it drives undici through its \`dispatch\` API with a small handler rather than \`request()\`, which is why *outbound client alone* can beat the baseline — the gap between that row and the executor's is the executor's own cost). Each call renders the block, builds the run's \`Redactor\`, sends, and redacts the request snapshot, response headers and body; the result is checked (ok, status 200, the echoed header comes back as \`[secret:${SECRET_NAME}]\`, the value nowhere).`,
    `- Closed loop: ${CONCURRENCY} concurrent loops, each awaiting its request before sending the next; req/s is requests ÷ wall time. ${Math.max(options.warmup, WARMUP)} warm-up requests per client first, then ${options.repetitions} repetitions alternating which client goes first.`,
    `- The machine has ${options.machine.cores} cores: the bench process (clients and executor on one event loop) and the upstream process share them. Both clients run under identical conditions, so the ratio is the comparison that matters; the absolute req/s are machine-specific.`,
    loadNote(options.machine.cores, load.start, load.end),
    ...commandLines('api-executor'),
  ];
  return { markdown: lines.join('\n'), gates };
}

/** Why the executor misses the target, from this run's figures (shown only when it does). */
function diagnosis(base: Measured, measured: Measured[], micro: MicroCost[]): string[] {
  const cost = (key: MicroCost['key']) => micro.find((m) => m.key === key)?.us ?? Number.NaN;
  const outbound = measured.find((m) => m.client.key === 'outbound') as Measured;
  const exec = measured.find((m) => m.client.key === 'executor') as Measured;
  const b = base.run.cpuUsPerRequest;
  const o = outbound.run.cpuUsPerRequest;
  const e = exec.run.cpuUsPerRequest;
  const budget = b / MIN_RATIO - b;
  const us = (v: number) => `${v.toFixed(0)} µs`;
  return [
    '#### Diagnosis',
    '',
    `Per request this process spends ${us(b)} of CPU on a plain undici request, ${us(o)} through Hush's outbound client and ${us(e)} through the executor. ${MIN_RATIO}× of undici leaves the executor a budget of about ${us(budget)} per request on top of the request itself.`,
    '',
    `- **Outbound client (+${us(o - b)} over undici):** the SSRF check of the resolved address in undici's connector (once per connection) and the response-size and deadline checks while the body is read; there is no timer or \`AbortSignal\` per request (undici's \`headersTimeout\`/\`bodyTimeout\` bound the waits).`,
    `- **Executor (+${us(e - o)} over the outbound client):** every execution builds a new \`Redactor\` (${cost('redactor').toFixed(1)} µs, of which \`secretForms\` ${cost('forms').toFixed(1)} µs), redacts the ${UPSTREAM_BODY_BYTES}-byte body (${cost('redact').toFixed(1)} µs), renders the block (\`analyzeBlock\` ${cost('analyze').toFixed(1)} µs plus templates and \`new URL\`), redacts the request snapshot and every response header, and allocates the result; all of it, without I/O, is ${cost('executor').toFixed(1)} µs per call (stub client). The forms are derived from the plaintext, so they are built per execution: caching them would keep plaintext-equivalent material in memory between executions, which SPEC §3 rules out. Already done: encodings that cannot change an ASCII value are not recomputed, the base64 and hex forms come from one buffer, the forms are listed without hashing each into a set and ordered by insertion (no comparator calls), the 1 KiB body is skipped through with a Wu–Manber shift table (about 1 µs instead of 6), the SSRF verdict of an address is kept per client, the result is built without object spread.`,
    `- ${cost('executor') > budget ? `The executor's own work without I/O (${cost('executor').toFixed(1)} µs, of which redacting the response ${cost('redact').toFixed(1)} µs) already exceeds the ${us(budget)} budget: against a loopback upstream that answers in tens of microseconds, ${MIN_RATIO}× of a bare undici request is out of reach for any executor that renders, redacts and records each call in JavaScript, whatever the fixes above save.` : `The executor's own work without I/O (${cost('executor').toFixed(1)} µs) fits the ${us(budget)} budget, so the fixes above should be enough.`} In latency terms the executor adds about ${us(e - b)} of CPU per call, ${((e - b) / 10).toFixed(0)} % of a call to an upstream that takes 1 ms; a throughput ratio against a loopback echo mostly measures that fixed cost, so the target should name the upstream it assumes (latency, TLS) or be stated as CPU per call.`,
    '',
  ];
}
