/**
 * Where the time goes: a V8 CPU profile of this process (node:inspector,
 * no restart, no flags) taken around one extra, unmeasured run, summarised
 * for the report — self time by area (a file of src/, an npm package, Node's
 * own JavaScript, GC, idle) and inclusive time of the src/ functions on the
 * stack. V8 builtins (JSON.parse, String.prototype.replace…) have no file:
 * their time is charged to the JavaScript that called them.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import type { Profiler } from 'node:inspector';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT, sourceOfCompiled } from './compiled.js';
import { table } from './markdown.js';
import { progress } from './progress.js';

export interface TimeShare {
  label: string;
  ms: number;
  /** Fraction of the busy (non-idle) time. */
  share: number;
}

export interface ProfileSummary {
  /** Sampled time, ms (busy + idle). */
  totalMs: number;
  busyMs: number;
  /** Self time by area, largest first (idle excluded from shares). */
  areas: TimeShare[];
  /** src/ functions by inclusive time (each sample counts once per function on its stack). */
  srcFunctions: TimeShare[];
  /** Samples taken. */
  samples: number;
}

type Node = Profiler.ProfileNode;

function fileOf(url: string): string | null {
  if (!url) return null;
  if (url.startsWith('node:')) return url;
  try {
    return url.startsWith('file:') ? fileURLToPath(url) : url;
  } catch {
    return url;
  }
}

/** The area a frame with a file belongs to. */
function areaOfFile(compiledOrSource: string): string {
  if (compiledOrSource.startsWith('node:')) return 'Node.js core (node:*)';
  const file = sourceOfCompiled(compiledOrSource) ?? compiledOrSource;
  const nm = file.lastIndexOf(`${path.sep}node_modules${path.sep}`);
  if (nm !== -1) {
    const parts = file.slice(nm + 14).split(path.sep);
    const pkg = parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] ?? '?');
    return `npm: ${pkg}`;
  }
  const rel = path.relative(ROOT, file);
  if (rel.startsWith(`src${path.sep}`)) return rel.split(path.sep).join('/');
  if (rel.startsWith(`bench${path.sep}`)) return 'bench/ (load generator, baselines)';
  return 'other';
}

const SQLITE_NATIVE = 'SQLite engine (better-sqlite3 native: prepare, run, all)';
/** Kysely's SQLite driver, whose executeQuery calls into better-sqlite3. */
const SQLITE_DRIVER = /[\\/]kysely[\\/].*[\\/]sqlite-driver/;

const SPECIAL = new Map<string, string>([
  ['(garbage collector)', 'GC'],
  ['(idle)', 'idle'],
  ['(program)', 'V8 / native (program)'],
]);

/**
 * Runs `fn` under the sampling profiler. With HUSH_BENCH_CPUPROFILE_DIR set,
 * the raw profile is also written there as `<name>.cpuprofile` (open it in
 * Chrome DevTools or speedscope).
 */
export async function profileWhile<T>(
  name: string,
  fn: () => Promise<T>,
  intervalUs = 200,
): Promise<{ result: T; profile: ProfileSummary }> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: intervalUs });
    await session.post('Profiler.start');
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await fn() };
    } catch (error) {
      outcome = { ok: false, error };
    }
    const stopped = await session.post('Profiler.stop');
    if (!outcome.ok) throw outcome.error;
    const result = outcome.value;
    const dir = process.env.HUSH_BENCH_CPUPROFILE_DIR;
    if (dir) {
      mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `${name}.cpuprofile`);
      writeFileSync(file, JSON.stringify(stopped.profile));
      progress(`profile written to ${file}`);
    }
    return { result, profile: summarise(stopped.profile) };
  } finally {
    await session.post('Profiler.disable').catch(() => {});
    session.disconnect();
  }
}

export function summarise(profile: Profiler.Profile, top = 14): ProfileSummary {
  const byId = new Map<number, Node>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // The area each node's self time is charged to (builtins → their caller's).
  const areaCache = new Map<number, string>();
  const areaOf = (id: number): string => {
    const cached = areaCache.get(id);
    if (cached) return cached;
    const n = byId.get(id) as Node;
    const special = SPECIAL.get(n.callFrame.functionName);
    const file = fileOf(n.callFrame.url);
    let area: string;
    if (special) area = special;
    // A profile written by `node --cpu-prof` has no frame for better-sqlite3's C++ methods: their
    // time is the self time of the JavaScript that called them, Kysely's SQLite executeQuery.
    else if (file && n.callFrame.functionName === 'executeQuery' && SQLITE_DRIVER.test(file)) area = SQLITE_NATIVE;
    else if (file) area = areaOfFile(file);
    else {
      const p = parent.get(id);
      if (p === undefined || n.callFrame.functionName === '(root)') area = 'V8 / native (program)';
      else {
        // Native code (V8 builtins, C++ bindings) is charged to its caller, except
        // better-sqlite3's statements, which are the SQLite engine itself.
        const callerFile = fileOf((byId.get(p) as Node).callFrame.url) ?? '';
        area =
          /[\\/]better-sqlite3[\\/]/.test(callerFile) || SQLITE_DRIVER.test(callerFile) ? SQLITE_NATIVE : areaOf(p);
      }
    }
    areaCache.set(id, area);
    return area;
  };
  const srcLabel = (n: Node): string | null => {
    const file = fileOf(n.callFrame.url);
    if (!file || file.startsWith('node:')) return null;
    const area = areaOfFile(file);
    if (!area.startsWith('src/')) return null;
    return `${n.callFrame.functionName || '(anonymous)'} — ${area}`;
  };

  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let total = 0;
  let idle = 0;
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time before sample i: charge sample i with the next delta.
    const us = deltas[i + 1] ?? deltas[i] ?? 0;
    const id = samples[i] as number;
    total += us;
    const area = areaOf(id);
    if (area === 'idle') {
      idle += us;
      continue;
    }
    self.set(area, (self.get(area) ?? 0) + us);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const label = srcLabel(byId.get(cur) as Node);
      if (label && !seen.has(label)) {
        seen.add(label);
        inclusive.set(label, (inclusive.get(label) ?? 0) + us);
      }
    }
  }
  const busy = total - idle;
  const shares = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([label, us]) => ({ label, ms: us / 1000, share: busy > 0 ? us / busy : 0 }));
  return {
    totalMs: total / 1000,
    busyMs: busy / 1000,
    areas: shares(self),
    srcFunctions: shares(inclusive),
    samples: samples.length,
  };
}

function pct(share: number): string {
  return `${(share * 100).toFixed(1)} %`;
}

/**
 * Two tables for the report: self time by area, and src/ functions by
 * inclusive time; with `requests`, also µs per request.
 */
export function profileMarkdown(p: ProfileSummary, requests?: number): string {
  const perRequest = (msTotal: number) => (requests ? [((msTotal * 1000) / requests).toFixed(0)] : []);
  const extra = requests ? ['µs per request'] : [];
  const align = requests ? (['right'] as const) : [];
  return [
    `Sampled ${p.samples.toLocaleString('en-US')} times over ${(p.totalMs / 1000).toFixed(1)} s, of which ${(p.busyMs / 1000).toFixed(1)} s in JavaScript, GC or V8; the rest V8 counts as idle — the event loop polling and libuv's own socket reads, or waiting (on the database, the upstream). Shares are of the non-idle time.`,
    '',
    '**Self time by area**',
    '',
    table(
      ['area', 'ms', ...extra, 'share'],
      p.areas.map((a) => [a.label, a.ms.toFixed(0), ...perRequest(a.ms), pct(a.share)]),
      ['left', 'right', ...align, 'right'],
    ),
    '',
    '**src/ functions, inclusive time** (callees included; nested entries overlap)',
    '',
    table(
      ['function — file', 'ms', ...extra, 'share'],
      p.srcFunctions.map((f) => [f.label, f.ms.toFixed(0), ...perRequest(f.ms), pct(f.share)]),
      ['left', 'right', ...align, 'right'],
    ),
  ].join('\n');
}

/**
 * The part of `profile` between two CLOCK_MONOTONIC instants in µs (e.g.
 * `process.hrtime.bigint() / 1000n` of any process on this machine: V8's
 * profile timestamps use the same clock on Linux), so that a profile of a
 * whole process run (`node --cpu-prof`) can be cut to the measured window.
 */
export function sliceProfile(profile: Profiler.Profile, fromUs: number, toUs: number): Profiler.Profile {
  const samples: number[] = [];
  const deltas: number[] = [];
  let t = profile.startTime;
  let last = fromUs;
  const all = profile.samples ?? [];
  const allDeltas = profile.timeDeltas ?? [];
  for (let i = 0; i < all.length; i++) {
    t += allDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    samples.push(all[i] as number);
    deltas.push(t - last);
    last = t;
  }
  return { ...profile, startTime: fromUs, endTime: toUs, samples, timeDeltas: deltas };
}
