/**
 * Writes docs/PERFORMANCE.md: a header, the machine of the latest run, the
 * general method, then one marked section per scenario. Running a subset of
 * scenarios replaces only their sections and keeps the others (each section
 * names the run it comes from).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { MachineInfo } from './machine.js';
import { table } from './markdown.js';

export interface ScenarioSection {
  id: string;
  title: string;
  markdown: string;
}

const START = (id: string) => `<!-- bench:${id}:start -->`;
const END = (id: string) => `<!-- bench:${id}:end -->`;
const SECTION = /<!-- bench:([a-z0-9-]+):start -->\n([\s\S]*?)\n<!-- bench:\1:end -->/g;

/** The sections already in the file, by id, in file order. */
function existingSections(file: string): Map<string, string> {
  const found = new Map<string, string>();
  if (!existsSync(file)) return found;
  for (const match of readFileSync(file, 'utf8').matchAll(SECTION)) {
    if (match[1] && match[2] !== undefined) found.set(match[1], match[2]);
  }
  return found;
}

function machineSection(m: MachineInfo): string {
  return table(
    ['', ''],
    [
      ['CPU', m.cpuModel],
      ['cores (os.cpus)', String(m.cores)],
      ['memory', `${m.memoryGiB} GiB`],
      ['OS', m.platform],
      ['Node.js', m.node],
      ['SQLite (better-sqlite3)', m.sqlite],
      ['PostgreSQL', m.postgres ?? 'not reachable (skipped)'],
      ['date', m.date],
    ],
  );
}

const METHOD = `- Every scenario measures **the code users run**: \`src/\` compiled by \`tsc -p tsconfig.build.json\` (as \`npm run build\` does) once per run, not tsx's on-the-fly transform (the harness runs under tsx, which wraps every closure it creates in a keep-names call; \`bench/support/compiled.ts\`).
- Hush runs **in process** in most scenarios, built as the server builds itself (\`loadConfig\` → \`createAppContext\` → \`buildServer\`, migrations included) with \`HUSH_LOG_LEVEL=silent\`; requests go through \`fastify.inject\`, i.e. the whole HTTP stack (routing, authentication hook, zod validation and serialisation) without sockets, so the numbers show the server's own cost, free of network noise.
- The **load** and **memory** scenarios run Hush **as deployed** instead: \`src/\` compiled with \`tsconfig.build.json\` and started as \`node dist/cli/hush.js serve\` child processes, driven over real sockets by a load generator (autocannon) in a process of its own, next to baselines that each run in their own process too.
- Opt-in scenarios (too long for the default suite, e.g. \`memory-soak\`) run only when named: \`npm run bench -- <scenario>\`; \`npm run bench -- --list\` lists them all.
- Each engine gets a **fresh database**: a SQLite file in a temp dir (WAL, \`synchronous=NORMAL\`, as Hush opens it) or a new PostgreSQL database on the local server (pool of 10, as Hush opens it), dropped at the end.
- Data is set up **through the real API** where it matters (first-run setup, personal API token) and bulk-loaded directly when a scenario needs volume, with the production encryption code.
- Requests are **sequential** (one in flight) unless a scenario says otherwise; latency is wall time around \`inject\`; percentiles are nearest-rank; **req/s** is requests ÷ summed latency. Each figure is the **median over the repetitions** (warm-up excluded).
- Responses are checked during measurement; a wrong answer stops the run.
- Absolute numbers depend on the machine (above); compare ratios and trends, and rerun before comparing with another machine.`;

/** How long a run of the whole default suite took, scenario by scenario. */
export interface SuiteTiming {
  date: string;
  seconds: number;
  scenarios: { id: string; seconds: number }[];
}

/** Issue 7: `npm run bench` runs the whole suite in under 10 minutes. */
export const SUITE_BUDGET_SECONDS = 600;

const minutes = (seconds: number) => {
  const whole = Math.floor(seconds);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
};

function suiteSection(t: SuiteTiming, machine: MachineInfo): string {
  const within = t.seconds < SUITE_BUDGET_SECONDS;
  return [
    `The last run of the whole default suite (\`npm run bench\`, ${t.date}, ${machine.cpuModel} × ${machine.cores}) took **${minutes(t.seconds)}** from the start of the bench process — ${within ? 'within' : 'over'} its budget of ${SUITE_BUDGET_SECONDS / 60} minutes (issue 7)${within ? '' : ' ❌'}. Runs of single scenarios leave this figure as it is.`,
    '',
    table(
      ['scenario', 'seconds'],
      t.scenarios.map((s) => [s.id, s.seconds.toFixed(0)]),
      ['left', 'right'],
    ),
  ].join('\n');
}

const SUITE = 'suite';

export function writePerformanceDoc(
  file: string,
  machine: MachineInfo,
  sections: ScenarioSection[],
  suite?: SuiteTiming,
): void {
  const merged = existingSections(file);
  for (const s of sections) merged.set(s.id, `### ${s.title}\n\n${s.markdown.trimEnd()}`);
  if (suite) merged.set(SUITE, suiteSection(suite, machine));
  const suiteText = merged.get(SUITE);
  merged.delete(SUITE);
  const body = [...merged].map(([id, text]) => `${START(id)}\n${text}\n${END(id)}`).join('\n\n');
  const doc = `# Performance

Generated by \`npm run bench\` (\`bench/run.ts\`); do not edit by hand — rerun it
(\`npm run bench -- <scenario>\` refreshes one scenario and keeps the others).

## Machine (latest run)

${machineSection(machine)}

${suiteText === undefined ? '' : `## Whole suite\n\n${START(SUITE)}\n${suiteText}\n${END(SUITE)}\n\n`}## Method

${METHOD}

## Scenarios

${body}
`;
  writeFileSync(file, doc);
}
