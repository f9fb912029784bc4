/**
 * Crash safety (issue 8): a real `hush serve` process is SIGKILLed at seeded
 * random moments while several client loops create, update (with and
 * without If-Match), delete, restore and purge secrets and create, change,
 * rename and delete custom variables — at least 20 kills per database —
 * and restarted on the same data directory / database each time.
 *
 * Every write whose 2xx answer arrived before the kill is acknowledged: after
 * the restart it must be there, exactly (every version's value, description,
 * deleted or not, the variable's value and name). A write still in flight at
 * the kill is unknown: it may have happened or not, but wholly — the stored
 * state must equal the state before it or the state after it, and its audit
 * event must exist exactly when its change does. After every restart, every
 * stored ciphertext (all versions) decrypts, each secret stores versions
 * 1..N with no gap, the shared name registry is one-to-one with the secrets
 * and variables, the API lists, reveals and versions agree with what the
 * client knows, and the audit chains verify; `hush audit verify` at the end.
 *
 * Each slot (a name) belongs to one client loop, which runs one request at a
 * time, so the loop always knows what the slot must hold. Reproduce a run
 * with HUSH_CRASH_SEED (and HUSH_CRASH_KILLS); the seed fixes the operation
 * mix and the kill delays, not the server's timing.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  type ApiReply,
  createSite,
  describeRun,
  type HushClient,
  type HushServer,
  type HushSite,
  killStartedProcesses,
  runHush,
  setUp,
  startServer,
  tokenClient,
} from '../support/cli.js';
import { auditCounts, chainProblems, diffCounts, readStoredState, SeededRandom } from '../support/crash.js';
import { DATABASES } from '../support/databases.js';

const KILLS = Number(process.env.HUSH_CRASH_KILLS ?? 20);
const SEED = Number(process.env.HUSH_CRASH_SEED ?? 0x5eed2026);
const WORKERS = 4;
const SLOTS_PER_WORKER = 3;
/** The kill comes this many ms (seeded, uniform) after the client loops start. */
const KILL_AFTER_MS: [number, number] = [20, 600];

/** The audit actions of the writes driven here (reveals are reads: not counted). */
const TRACKED_ACTIONS = [
  'secret.created',
  'secret.updated',
  'secret.deleted',
  'secret.restored',
  'secret.purged',
  'variable.created',
  'variable.updated',
  'variable.deleted',
] as const;

interface SecretState {
  kind: 'secret';
  id: string;
  name: string;
  /** Value of version i + 1. */
  values: string[];
  description: string;
  deleted: boolean;
}
interface VariableState {
  kind: 'variable';
  id: string;
  name: string;
  testValue: string;
}
type SlotState = { kind: 'absent' } | SecretState | VariableState;

interface Write {
  describe: string;
  action: (typeof TRACKED_ACTIONS)[number];
  /** The audit target; undefined for a create (the server picks the id). */
  target: string | undefined;
  /** The state once the write is done; a create without its reply has id ''. */
  after(reply?: ApiReply): SlotState;
}

interface Step {
  describe: string;
  send(api: HushClient): Promise<ApiReply>;
  status: number;
  /** Extra checks of a reply with the expected status; returns a problem or undefined. */
  check?(reply: ApiReply): string | undefined;
  write?: Write;
}

interface Slot {
  label: string;
  /** The name, case-insensitively; each incarnation picks its own casing. */
  base: string;
  /** May hold a custom variable as well as a secret (one name space). */
  mixed: boolean;
  state: SlotState;
  /** A write whose outcome the client does not know: no answer (in flight at the kill), or a wrong one. */
  pending?: { write: Write; unanswered: boolean };
}

interface Tally {
  acknowledged: number;
  reads: number;
  inFlight: number;
  refused: number;
  applied: number;
  notApplied: number;
  lost: number;
  torn: number;
  decrypted: number;
  failures: string[];
}

function show(s: SlotState): string {
  if (s.kind === 'absent') return 'absent';
  if (s.kind === 'variable') return `variable ${s.id || '?'} ${s.name}=${JSON.stringify(s.testValue)}`;
  const last = s.values.at(-1) ?? '';
  return `secret ${s.id || '?'} ${s.name} v${s.values.length} (${last.slice(0, 24)}…) "${s.description}"${s.deleted ? ' deleted' : ''}`;
}

/** How `observed` differs from `expected`, one line per acknowledged fact missing. */
function differences(expected: SlotState, observed: SlotState): string[] {
  if (expected.kind !== observed.kind) return [`expected ${show(expected)}, stored ${show(observed)}`];
  if (expected.kind === 'absent' || observed.kind === 'absent') return [];
  const out: string[] = [];
  if (expected.id !== '' && expected.id !== observed.id) out.push(`id ${observed.id}, expected ${expected.id}`);
  if (expected.name !== observed.name) out.push(`name ${observed.name}, expected ${expected.name}`);
  if (expected.kind === 'variable' && observed.kind === 'variable') {
    if (expected.testValue !== observed.testValue) {
      out.push(`value ${JSON.stringify(observed.testValue)}, expected ${JSON.stringify(expected.testValue)}`);
    }
  }
  if (expected.kind === 'secret' && observed.kind === 'secret') {
    if (expected.values.length !== observed.values.length) {
      out.push(`at version ${observed.values.length}, expected ${expected.values.length}`);
    }
    expected.values.forEach((v, i) => {
      if (observed.values[i] !== v) out.push(`version ${i + 1} holds ${String(observed.values[i]).slice(0, 30)}`);
    });
    if (expected.description !== observed.description) {
      out.push(`description "${observed.description}", expected "${expected.description}"`);
    }
    if (expected.deleted !== observed.deleted) out.push(`deleted ${observed.deleted}, expected ${expected.deleted}`);
  }
  return out;
}

/** A value unique to `tag`: sometimes long and multi-byte, so a write spans several pages. */
function secretValue(rng: SeededRandom, tag: string): string {
  const r = rng.next();
  if (r < 0.2) return `long-${tag}-${'✓é-ü'.repeat(rng.between(200, 3000))}`;
  if (r < 0.3) return `ünïcødé-${tag}-😀`;
  return `v-${tag}-${rng.int(1e9).toString(36)}`;
}

/** Another casing of `name` than `current`. */
function otherCasing(rng: SeededRandom, base: string, current: string): string {
  for (let i = 0; i < 8; i++) {
    const v = rng.caseVariant(base);
    if (v !== current) return v;
  }
  const first = current[0] ?? '';
  const flipped = first === first.toUpperCase() ? first.toLowerCase() : first.toUpperCase();
  return flipped + current.slice(1);
}

/** The next step for a slot, from its state (the loop that owns the slot knows it exactly). */
function planStep(ws: string, slot: Slot, rng: SeededRandom, tag: string): Step {
  const s = slot.state;
  const secrets = `/workspaces/${ws}/secrets`;
  const variables = `/workspaces/${ws}/variables`;
  if (s.kind === 'absent') {
    const name = rng.caseVariant(slot.base);
    if (slot.mixed && rng.next() < 0.4) {
      const testValue = `var-${tag}`;
      return {
        describe: `create variable ${name}`,
        status: 201,
        send: (api) => api.post(variables, { name, type: 'text', testValue }),
        check: (r) => (r.body?.testValue === testValue ? undefined : `reply ${r.text.slice(0, 200)}`),
        write: {
          describe: `create variable ${name}`,
          action: 'variable.created',
          target: undefined,
          after: (r) => ({ kind: 'variable', id: String(r?.body?.id ?? ''), name, testValue }),
        },
      };
    }
    const value = secretValue(rng, tag);
    const description = `d-${tag}`;
    return {
      describe: `create secret ${name}`,
      status: 201,
      send: (api) => api.post(secrets, { name, visibility: 'masked', value, description }),
      check: (r) => (r.body?.version === 1 && r.body.value === undefined ? undefined : `reply ${r.text.slice(0, 200)}`),
      write: {
        describe: `create secret ${name}`,
        action: 'secret.created',
        target: undefined,
        after: (r) => ({
          kind: 'secret',
          id: String(r?.body?.id ?? ''),
          name,
          values: [value],
          description,
          deleted: false,
        }),
      },
    };
  }

  if (s.kind === 'variable') {
    const url = `${variables}/${s.id}`;
    const r = rng.next();
    if (r < 0.5) {
      const testValue = `var-${tag}`;
      return {
        describe: `set variable ${s.name}`,
        status: 200,
        send: (api) => api.patch(url, { testValue }),
        check: (reply) => (reply.body?.testValue === testValue ? undefined : `reply ${reply.text.slice(0, 200)}`),
        write: {
          describe: `set variable ${s.name} to ${testValue}`,
          action: 'variable.updated',
          target: s.id,
          after: () => ({ ...s, testValue }),
        },
      };
    }
    if (r < 0.65) {
      const name = otherCasing(rng, slot.base, s.name);
      return {
        describe: `rename variable ${s.name} → ${name}`,
        status: 200,
        send: (api) => api.patch(url, { name }),
        check: (reply) => (reply.body?.name === name ? undefined : `reply ${reply.text.slice(0, 200)}`),
        write: {
          describe: `rename variable ${s.name} → ${name}`,
          action: 'variable.updated',
          target: s.id,
          after: () => ({ ...s, name }),
        },
      };
    }
    return {
      describe: `delete variable ${s.name}`,
      status: 204,
      send: (api) => api.request('DELETE', url),
      write: {
        describe: `delete variable ${s.name}`,
        action: 'variable.deleted',
        target: s.id,
        after: () => ({ kind: 'absent' }),
      },
    };
  }

  const url = `${secrets}/${s.id}`;
  const version = s.values.length;
  const purge: Step = {
    describe: `purge ${s.name}`,
    status: 204,
    send: (api) => api.request('DELETE', `${url}?purge=true`),
    write: { describe: `purge ${s.name}`, action: 'secret.purged', target: s.id, after: () => ({ kind: 'absent' }) },
  };
  if (s.deleted) {
    const r = rng.next();
    if (r < 0.1) {
      return {
        describe: `reveal deleted ${s.name}`,
        status: 409,
        send: (api) => api.post(`${url}/reveal`),
        check: (reply) => (reply.body?.code === 'secret_deleted' ? undefined : `reply ${reply.text.slice(0, 200)}`),
      };
    }
    if (r < 0.55) {
      return {
        describe: `restore ${s.name}`,
        status: 200,
        send: (api) => api.post(`${url}/restore`),
        check: (reply) =>
          reply.body?.deletedAt === null && reply.body.version === version
            ? undefined
            : `reply ${reply.text.slice(0, 200)}`,
        write: {
          describe: `restore ${s.name}`,
          action: 'secret.restored',
          target: s.id,
          after: () => ({ ...s, deleted: false }),
        },
      };
    }
    return purge;
  }

  const r = rng.next();
  if (r < 0.45) {
    const value = secretValue(rng, tag);
    const headers: Record<string, string> = rng.next() < 0.7 ? { 'if-match': `"${version}"` } : {};
    return {
      describe: `update ${s.name} v${version} → v${version + 1}${headers['if-match'] ? ' (If-Match)' : ''}`,
      status: 200,
      send: (api) => api.request('PATCH', url, { value }, headers),
      check: (reply) => (reply.body?.version === version + 1 ? undefined : `reply ${reply.text.slice(0, 200)}`),
      write: {
        describe: `update ${s.name} to v${version + 1}`,
        action: 'secret.updated',
        target: s.id,
        after: () => ({ ...s, values: [...s.values, value] }),
      },
    };
  }
  if (r < 0.55) {
    const description = `d-${tag}`;
    const headers: Record<string, string> = rng.next() < 0.5 ? { 'if-match': String(version) } : {};
    return {
      describe: `describe ${s.name}`,
      status: 200,
      send: (api) => api.request('PATCH', url, { description }, headers),
      check: (reply) =>
        reply.body?.version === version && reply.body.description === description
          ? undefined
          : `reply ${reply.text.slice(0, 200)}`,
      write: {
        describe: `describe ${s.name} as ${description}`,
        action: 'secret.updated',
        target: s.id,
        after: () => ({ ...s, description }),
      },
    };
  }
  if (r < 0.72) {
    const expected = s.values.at(-1);
    return {
      describe: `reveal ${s.name} v${version}`,
      status: 200,
      send: (api) => api.post(`${url}/reveal`),
      check: (reply) =>
        reply.body?.value === expected
          ? undefined
          : `revealed ${String(reply.body?.value).slice(0, 40)}, expected ${expected?.slice(0, 40)}`,
    };
  }
  if (r < 0.9) {
    return {
      describe: `delete ${s.name}`,
      status: 204,
      send: (api) => api.request('DELETE', url),
      write: {
        describe: `delete ${s.name}`,
        action: 'secret.deleted',
        target: s.id,
        after: () => ({ ...s, deleted: true }),
      },
    };
  }
  return purge;
}

class AuditExpectation {
  readonly counts = new Map<string, Map<string, number>>();

  bump(target: string, action: string): void {
    const m = this.counts.get(target) ?? new Map<string, number>();
    m.set(action, (m.get(action) ?? 0) + 1);
    this.counts.set(target, m);
  }
}

/**
 * One client loop: picks one of its slots, sends the next request, and on a
 * 2xx records the write as acknowledged. When the connection fails (the
 * server is gone) the write becomes the slot's pending, unknown write and the
 * loop ends.
 */
async function clientLoop(
  api: HushClient,
  ws: string,
  worker: number,
  slots: Slot[],
  rng: SeededRandom,
  tally: Tally,
  audit: AuditExpectation,
  cycle: number,
): Promise<void> {
  for (let n = 0; ; n++) {
    const slot = slots[rng.int(slots.length)];
    if (!slot) return;
    const step = planStep(ws, slot, rng, `k${cycle}w${worker}n${n}`);
    let reply: ApiReply;
    try {
      reply = await step.send(api);
    } catch (error) {
      const code = (error as { cause?: { code?: unknown } }).cause?.code;
      if (code === 'ECONNREFUSED') {
        // Sent after the kill: never reached a server, so it must have changed nothing.
        tally.refused += 1;
      } else if (step.write) {
        // No answer: the server died with this write in flight, which may or may not have happened.
        slot.pending = { write: step.write, unanswered: true };
        tally.inFlight += 1;
      }
      return;
    }
    const problem = reply.status === step.status ? step.check?.(reply) : `${reply.status} ${reply.text.slice(0, 300)}`;
    if (problem) {
      tally.failures.push(`kill ${cycle}, ${slot.label}: ${step.describe} → ${problem}`);
      // The outcome is unclear; let the check after the restart settle it.
      if (step.write) slot.pending = { write: step.write, unanswered: false };
      return;
    }
    if (!step.write) {
      tally.reads += 1;
      continue;
    }
    const after = step.write.after(reply);
    const target = step.write.target ?? (after.kind === 'absent' ? '' : after.id);
    audit.bump(target, step.write.action);
    slot.state = after;
    tally.acknowledged += 1;
  }
}

/** The slot's row as stored: found by its name, case-insensitively. */
function observe(slot: Slot, stored: Awaited<ReturnType<typeof readStoredState>>, problems: string[]): SlotState {
  const lower = slot.base.toLowerCase();
  const found: SlotState[] = [];
  for (const s of stored.secrets.values()) {
    if (s.name.toLowerCase() !== lower) continue;
    found.push({
      kind: 'secret',
      id: s.id,
      name: s.name,
      values: s.values,
      description: s.description,
      deleted: s.deleted,
    });
  }
  for (const v of stored.variables.values()) {
    if (v.name.toLowerCase() === lower) {
      found.push({ kind: 'variable', id: v.id, name: v.name, testValue: String(v.testValue) });
    }
  }
  if (found.length > 1) problems.push(`${slot.label}: ${found.length} rows hold the name: ${found.map(show)}`);
  return found[0] ?? { kind: 'absent' };
}

/**
 * After a restart: settles every unknown write (before or after, nothing in
 * between), compares every slot with what was acknowledged, and checks the
 * database, the API and the audit trail. Returns the problems found.
 */
async function checkAfterRestart(
  ctx: Awaited<ReturnType<HushSite['open']>>,
  api: HushClient,
  ws: string,
  slots: Slot[],
  tally: Tally,
  audit: AuditExpectation,
  cycle: number,
): Promise<string[]> {
  const stored = await readStoredState(ctx, ws);
  tally.decrypted += stored.decrypted;
  const problems = stored.problems.map((p) => `kill ${cycle}: ${p}`);

  for (const slot of slots) {
    const observed = observe(slot, stored, problems);
    const pending = slot.pending;
    slot.pending = undefined;
    if (pending) {
      const { write, unanswered } = pending;
      const after = write.after();
      if (differences(after, observed).length === 0) {
        if (unanswered) tally.applied += 1;
        audit.bump(write.target ?? (observed.kind === 'absent' ? '' : observed.id), write.action);
      } else if (differences(slot.state, observed).length === 0) {
        if (unanswered) tally.notApplied += 1;
      } else {
        tally.torn += 1;
        problems.push(
          `kill ${cycle}, ${slot.label}: "${write.describe}" was in flight and left neither the state before (${show(slot.state)}) nor after (${show(after)}): stored ${show(observed)}`,
        );
      }
    } else {
      const lost = differences(slot.state, observed);
      if (lost.length > 0) {
        tally.lost += lost.length;
        problems.push(`kill ${cycle}, ${slot.label}: acknowledged state not found: ${lost.join('; ')}`);
      }
    }
    slot.state = observed;
  }
  const known = slots.filter((s) => s.state.kind !== 'absent').length;
  if (stored.secrets.size + stored.variables.size !== known) {
    problems.push(
      `kill ${cycle}: ${stored.secrets.size} secrets and ${stored.variables.size} variables stored, ${known} expected`,
    );
  }

  // What the API says agrees with what is stored and acknowledged.
  const base = `/workspaces/${ws}`;
  const secrets = slots.map((s) => s.state).filter((s): s is SecretState => s.kind === 'secret');
  const ids = (items: { id: string }[]) => items.map((i) => i.id).sort();
  const listed = await api.get(`${base}/secrets?limit=200`);
  const listedDeleted = await api.get(`${base}/secrets?limit=200&deleted=true`);
  const listedVariables = await api.get(`${base}/variables?kind=custom&limit=200`);
  const want = {
    live: secrets.filter((s) => !s.deleted).map((s) => s.id),
    deleted: secrets.filter((s) => s.deleted).map((s) => s.id),
    variables: slots.flatMap((s) => (s.state.kind === 'variable' ? [`${s.state.id}:${s.state.name}`] : [])),
  };
  if (ids(listed.body?.items ?? []).join() !== want.live.sort().join()) {
    problems.push(`kill ${cycle}: GET secrets lists ${ids(listed.body?.items ?? [])}, expected ${want.live}`);
  }
  if (ids(listedDeleted.body?.items ?? []).join() !== want.deleted.sort().join()) {
    problems.push(`kill ${cycle}: GET secrets?deleted=true lists ${ids(listedDeleted.body?.items ?? [])}`);
  }
  const gotVariables = (listedVariables.body?.items ?? []).map(
    (v: { id: string; name: string }) => `${v.id}:${v.name}`,
  );
  if (gotVariables.sort().join() !== want.variables.sort().join()) {
    problems.push(`kill ${cycle}: GET variables lists ${gotVariables}, expected ${want.variables}`);
  }
  for (const s of secrets) {
    const url = `${base}/secrets/${s.id}`;
    const reveal = await api.post(`${url}/reveal`);
    tally.reads += 1;
    if (s.deleted) {
      if (reveal.status !== 409 || reveal.body?.code !== 'secret_deleted') {
        problems.push(`kill ${cycle}: reveal of deleted ${s.name}: ${reveal.status} ${reveal.text.slice(0, 100)}`);
      }
      continue;
    }
    if (reveal.status !== 200 || reveal.body?.value !== s.values.at(-1)) {
      problems.push(`kill ${cycle}: reveal of ${s.name}: ${reveal.status} ${reveal.text.slice(0, 100)}`);
    }
    const versions = await api.get(`${url}/versions`);
    const numbers = (versions.body?.items ?? []).map((v: { version: number }) => v.version).join();
    const expected = s.values.map((_, i) => s.values.length - i).join();
    if (numbers !== expected) problems.push(`kill ${cycle}: ${s.name} versions [${numbers}], expected [${expected}]`);
  }

  // The audit trail: intact, and one event for exactly each write that happened.
  const chains = await chainProblems(ctx, ws);
  problems.push(...chains.problems.map((p) => `kill ${cycle}: ${p}`));
  const events = diffCounts(audit.counts, await auditCounts(ctx, ws, TRACKED_ACTIONS));
  problems.push(...events.map((p) => `kill ${cycle}: audit ${p}`));
  return problems;
}

const sites: HushSite[] = [];
afterEach(() => killStartedProcesses());
afterAll(async () => {
  for (const s of sites.splice(0)) await s.cleanup();
});

describe.each(DATABASES)('crash safety on $kind', ({ kind, available }) => {
  it.runIf(available)(
    `${KILLS} SIGKILLs under concurrent writes: every acknowledged write survives, every unknown one is all-or-nothing, the audit chain verifies`,
    async () => {
      const started = Date.now();
      const seed = SEED + (kind === 'postgres' ? 1 : 0);
      const rng = new SeededRandom(seed);
      const site = await createSite(kind);
      sites.push(site);
      let server: HushServer = await startServer(site.env);
      const owner = await setUp(server);
      const ws = owner.workspaceId;
      const ctx = await site.open();

      const slots: Slot[][] = Array.from({ length: WORKERS }, (_, w) =>
        Array.from({ length: SLOTS_PER_WORKER }, (_, i) => ({
          label: `w${w}s${i}`,
          base: `crash_w${w}_slot${i}`,
          mixed: i === 0,
          state: { kind: 'absent' } as SlotState,
        })),
      );
      const allSlots = slots.flat();
      const workerRngs = slots.map((_, w) => new SeededRandom(seed * 31 + w + 1));
      const audit = new AuditExpectation();
      const tally: Tally = {
        acknowledged: 0,
        reads: 0,
        inFlight: 0,
        refused: 0,
        applied: 0,
        notApplied: 0,
        lost: 0,
        torn: 0,
        decrypted: 0,
        failures: [],
      };
      let kills = 0;
      let downtimeMs = 0;
      try {
        for (let cycle = 1; cycle <= KILLS; cycle++) {
          const api = tokenClient(server.origin, owner.token);
          const loops = slots.map((mine, w) =>
            clientLoop(api, ws, w, mine, workerRngs[w] as SeededRandom, tally, audit, cycle),
          );
          await new Promise((r) => setTimeout(r, rng.between(...KILL_AFTER_MS)));
          server.process.child.kill('SIGKILL');
          const exit = await server.process.exited;
          expect(exit.signal, describeRun(exit)).toBe('SIGKILL');
          kills += 1;
          await Promise.all(loops);

          const t = Date.now();
          server = await startServer(site.env);
          downtimeMs += Date.now() - t;
          const problems = await checkAfterRestart(
            ctx,
            tokenClient(server.origin, owner.token),
            ws,
            allSlots,
            tally,
            audit,
            cycle,
          );
          expect([...tally.failures, ...problems], `seed ${seed}, after kill ${cycle}`).toEqual([]);
        }
        await server.stop();
        const verify = await runHush(['audit', 'verify'], site.env);
        expect(verify.code, describeRun(verify)).toBe(0);
        expect(verify.stdout).toMatch(new RegExp(`^ok +${ws}: \\d+ events$`, 'm'));
        expect(verify.stdout).not.toContain('BROKEN');

        // The run must have exercised what it claims to.
        expect(kills).toBe(KILLS);
        expect(tally.acknowledged).toBeGreaterThan(kills * 5);
        expect(tally.inFlight).toBeGreaterThan(0);
      } finally {
        await ctx.close();
        console.log(
          `crash-recovery ${kind}: ${kills} kills, ${tally.acknowledged} acknowledged writes checked, ${tally.lost} lost; ` +
            `${tally.inFlight} writes in flight at a kill (${tally.applied} applied, ${tally.notApplied} not, ${tally.torn} torn), ${tally.refused} refused after it; ` +
            `${tally.reads} reads checked, ${tally.decrypted} ciphertexts decrypted; seed ${seed}; ` +
            `restarts ${downtimeMs} ms, total ${Date.now() - started} ms`,
        );
      }
    },
    240_000,
  );
});
