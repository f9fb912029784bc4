/**
 * Checks of what is stored, for the reliability evidence (test/evidence):
 * every secret row with its gap-free versions, each decrypted under its own
 * AAD; the shared name space of secrets and variables, one-to-one; audit
 * chains verified and audit events counted per target; a seeded PRNG for
 * reproducible kill moments and operation mixes.
 *
 * All of it reads the database directly through an in-process context, so
 * it does not trust the server it checks.
 */
import type { AppContext } from '../../src/app/context.js';
import { decryptSecretValue } from '../../src/crypto/envelope.js';
import { SYSTEM_CHAIN } from '../../src/modules/audit/audit-chain.js';
import { verifyChain } from '../../src/modules/audit/audit-service.js';
import { decodeVariableValue } from '../../src/modules/variables/variable-types.js';

/** mulberry32: a small, fast, seeded PRNG; `next()` is in [0, 1). */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max]. */
  between(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** `name` with each letter upper- or lower-cased at random (same name, case-insensitively). */
  caseVariant(name: string): string {
    return [...name].map((ch) => (this.next() < 0.5 ? ch.toLowerCase() : ch.toUpperCase())).join('');
  }
}

export interface StoredSecretFull {
  id: string;
  name: string;
  visibility: string;
  description: string;
  deleted: boolean;
  /** secrets.version */
  version: number;
  /** Decrypted values of the stored versions, index = version - 1 (only when versions are 1..version). */
  values: string[];
}

export interface StoredVariable {
  id: string;
  name: string;
  type: string;
  testValue: unknown;
}

export interface StoredState {
  secrets: Map<string, StoredSecretFull>;
  variables: Map<string, StoredVariable>;
  /** Every structural problem found: a half-written or inconsistent state. Empty when all is well. */
  problems: string[];
  /** How many stored ciphertexts were decrypted. */
  decrypted: number;
}

/**
 * Reads a workspace's secrets, every version of each, its variables and its
 * name registry, and reports any state a committed transaction cannot leave:
 * a secret without version 1..N exactly (gap, missing current version, a
 * version above the current one), a version row without its secret, a
 * ciphertext that does not decrypt under its (workspace, secret, version,
 * key version) binding, a name registry row without its owner or an owner
 * without its row, two owners of one case-insensitive name.
 */
export async function readStoredState(ctx: AppContext, workspaceId: string): Promise<StoredState> {
  const problems: string[] = [];
  const secretRows = await ctx.db.selectFrom('secrets').selectAll().where('workspace_id', '=', workspaceId).execute();
  const versionRows = await ctx.db
    .selectFrom('secret_versions')
    .select(['secret_id', 'version', 'key_version', 'ciphertext', 'workspace_id'])
    .where('workspace_id', '=', workspaceId)
    .orderBy('secret_id')
    .orderBy('version')
    .execute();
  const variableRows = await ctx.db
    .selectFrom('variables')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .execute();
  const names = await ctx.db.selectFrom('variable_names').selectAll().where('workspace_id', '=', workspaceId).execute();
  // Version rows of this workspace's secrets that claim another workspace, and orphans anywhere.
  const strays = await ctx.db
    .selectFrom('secret_versions')
    .leftJoin('secrets', 'secrets.id', 'secret_versions.secret_id')
    .select(['secret_versions.secret_id', 'secret_versions.version', 'secrets.workspace_id as owner_ws'])
    .where((eb) =>
      eb.or([
        eb('secrets.id', 'is', null),
        eb.and([eb('secrets.workspace_id', '=', workspaceId), eb('secret_versions.workspace_id', '!=', workspaceId)]),
      ]),
    )
    .execute();
  for (const s of strays) {
    problems.push(`secret_versions row ${s.secret_id} v${s.version} has no secret in its workspace (${s.owner_ws})`);
  }

  const versionsBySecret = new Map<string, typeof versionRows>();
  for (const v of versionRows) {
    const list = versionsBySecret.get(v.secret_id) ?? [];
    list.push(v);
    versionsBySecret.set(v.secret_id, list);
  }

  const secrets = new Map<string, StoredSecretFull>();
  let decrypted = 0;
  for (const row of secretRows) {
    const version = Number(row.version);
    const versions = versionsBySecret.get(row.id) ?? [];
    versionsBySecret.delete(row.id);
    const numbers = versions.map((v) => Number(v.version));
    const expected = Array.from({ length: version }, (_, i) => i + 1);
    if (numbers.join(',') !== expected.join(',')) {
      problems.push(`secret ${row.id} (${row.name}) is at version ${version} but stores versions [${numbers}]`);
    }
    const values: string[] = [];
    for (const v of versions) {
      const keyVersion = Number(v.key_version);
      try {
        const dek = await ctx.keyring.dataKey(workspaceId, keyVersion);
        const plain = decryptSecretValue(dek, Buffer.from(v.ciphertext), {
          workspaceId,
          secretId: row.id,
          version: Number(v.version),
          keyVersion,
        });
        values[Number(v.version) - 1] = plain.toString('utf8');
        decrypted += 1;
      } catch (error) {
        problems.push(`secret ${row.id} (${row.name}) v${v.version} does not decrypt: ${(error as Error).message}`);
      }
    }
    secrets.set(row.id, {
      id: row.id,
      name: row.name,
      visibility: row.visibility,
      description: row.description,
      deleted: row.deleted_at !== null,
      version,
      values,
    });
  }
  for (const [secretId, list] of versionsBySecret) {
    problems.push(`${list.length} secret_versions rows of ${secretId} have no secret row`);
  }

  const variables = new Map<string, StoredVariable>();
  for (const row of variableRows) {
    variables.set(row.id, {
      id: row.id,
      name: row.name,
      type: row.type,
      testValue: decodeVariableValue(row.test_value),
    });
  }

  // The name registry: exactly one row per secret (live or deleted) and variable, and nothing else.
  const owners = new Map<string, { kind: 'secret' | 'variable'; id: string; name: string }[]>();
  for (const s of secrets.values()) {
    const list = owners.get(s.name.toLowerCase()) ?? [];
    list.push({ kind: 'secret', id: s.id, name: s.name });
    owners.set(s.name.toLowerCase(), list);
  }
  for (const v of variables.values()) {
    const list = owners.get(v.name.toLowerCase()) ?? [];
    list.push({ kind: 'variable', id: v.id, name: v.name });
    owners.set(v.name.toLowerCase(), list);
  }
  for (const [lower, list] of owners) {
    if (list.length > 1) {
      problems.push(`name "${lower}" is held by ${list.length} rows: ${list.map((o) => `${o.kind} ${o.id}`)}`);
    }
  }
  const registered = new Set<string>();
  for (const n of names) {
    registered.add(n.name_lower);
    const holders = owners.get(n.name_lower) ?? [];
    if (!holders.some((o) => o.kind === n.owner_kind && o.id === n.owner_id)) {
      problems.push(
        `name registry row "${n.name_lower}" → ${n.owner_kind} ${n.owner_id}, but that row holds it: [${holders.map((o) => `${o.kind} ${o.id}`)}]`,
      );
    }
  }
  for (const [lower, list] of owners) {
    if (!registered.has(lower)) problems.push(`name "${lower}" of ${list[0]?.kind} ${list[0]?.id} is not registered`);
  }

  return { secrets, variables, problems, decrypted };
}

/** Problems of the workspace chain and the system chain (empty when both verify). */
export async function chainProblems(
  ctx: AppContext,
  workspaceId: string,
): Promise<{ problems: string[]; events: number }> {
  const problems: string[] = [];
  let events = 0;
  for (const chain of [workspaceId, SYSTEM_CHAIN]) {
    const verdict = await verifyChain(ctx.db, chain);
    events += verdict.checked;
    if (!verdict.ok) problems.push(`audit chain ${chain} broken at ${verdict.brokenAt}: ${verdict.reason}`);
  }
  return { problems, events };
}

/** `targetId → action → count` of a workspace's audit events with one of `actions`. */
export async function auditCounts(
  ctx: AppContext,
  workspaceId: string,
  actions: readonly string[],
): Promise<Map<string, Map<string, number>>> {
  const rows = await ctx.db
    .selectFrom('audit_events')
    .select(['target_id', 'action', (eb) => eb.fn.countAll<number>().as('n')])
    .where('chain', '=', workspaceId)
    .where('action', 'in', [...actions])
    .groupBy(['target_id', 'action'])
    .execute();
  const out = new Map<string, Map<string, number>>();
  for (const r of rows) {
    const key = r.target_id ?? '(none)';
    const m = out.get(key) ?? new Map<string, number>();
    m.set(r.action, Number(r.n));
    out.set(key, m);
  }
  return out;
}

/** Differences between two `target → action → count` maps, as readable lines. */
export function diffCounts(
  expected: Map<string, Map<string, number>>,
  actual: Map<string, Map<string, number>>,
): string[] {
  const out: string[] = [];
  for (const target of new Set([...expected.keys(), ...actual.keys()])) {
    const e = expected.get(target) ?? new Map<string, number>();
    const a = actual.get(target) ?? new Map<string, number>();
    for (const action of new Set([...e.keys(), ...a.keys()])) {
      const want = e.get(action) ?? 0;
      const got = a.get(action) ?? 0;
      if (want !== got) out.push(`${target}: ${got} ${action} events, expected ${want}`);
    }
  }
  return out;
}
