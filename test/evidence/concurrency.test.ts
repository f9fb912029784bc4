/**
 * Concurrency (issue 8), over real HTTP against two `hush serve` processes
 * sharing one data directory / database, so requests race across processes
 * (on SQLite, across connections: one process alone would serialise them):
 *
 * - If-Match rounds: 16 clients update one secret with the same If-Match,
 *   round after round: each round exactly one 200 (the next version), the
 *   rest 412 `version_conflict`; the history is 1..N with no gap and each
 *   stored version holds its round's winner; one audit event per winner.
 * - Free-running If-Match contention: clients read, write with If-Match and
 *   retry on 412 until N writes succeeded: no two successes share a version
 *   (no lost update), versions are gap-free, each holds its writer's value.
 * - Concurrent updates without If-Match: each is a write of its own, so each
 *   succeeds with its own version.
 * - Create races on one name (case-insensitive, secrets and variables share
 *   the name space), renames of variables into a name racing creates of it,
 *   and creates racing the purge that frees the name: exactly one owner, the
 *   rest 409 `name_taken`, one row, a consistent name registry, and audit
 *   events only for what happened.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/app/context.js';
import {
  type ApiReply,
  createSite,
  type HushClient,
  type HushServer,
  type HushSite,
  killStartedProcesses,
  setUp,
  startServer,
  tokenClient,
} from '../support/cli.js';
import { auditCounts, chainProblems, readStoredState, SeededRandom } from '../support/crash.js';
import { DATABASES } from '../support/databases.js';

const CLIENTS = 16;
const IF_MATCH_ROUNDS = 12;
const CONTENDED_WRITES = 48;
const UNCONDITIONAL_ROUNDS = 4;
const CREATE_ROUNDS = 8;
const RENAME_ROUNDS = 4;
const PURGE_ROUNDS = 4;

function statuses(replies: ApiReply[]): string {
  return replies.map((r) => `${r.status}${r.body?.code ? `:${r.body.code}` : ''}`).join(' ');
}

describe.each(DATABASES)('concurrency on $kind', ({ kind, available }) => {
  let site: HushSite;
  const servers: HushServer[] = [];
  let ctx: AppContext & { close(): Promise<void> };
  let ws: string;
  /** CLIENTS clients, alternately on the two servers. */
  let clients: HushClient[];
  let first: HushClient;
  const rng = new SeededRandom(kind === 'sqlite' ? 7 : 8);

  beforeAll(async () => {
    if (!available) return;
    site = await createSite(kind);
    servers.push(await startServer(site.env));
    const owner = await setUp(servers[0] as HushServer);
    // The second server starts once the first has migrated the database.
    servers.push(await startServer(site.env));
    ws = owner.workspaceId;
    clients = Array.from({ length: CLIENTS }, (_, i) =>
      tokenClient((servers[i % servers.length] as HushServer).origin, owner.token),
    );
    first = clients[0] as HushClient;
    ctx = await site.open();
  }, 60_000);

  afterAll(async () => {
    for (const s of servers.splice(0)) await s.stop().catch(() => {});
    killStartedProcesses();
    await ctx?.close();
    await site?.cleanup();
  });

  /** Nothing half-written anywhere in the workspace, and the audit chains verify. */
  async function expectConsistent(): Promise<Awaited<ReturnType<typeof readStoredState>>> {
    const stored = await readStoredState(ctx, ws);
    const chains = await chainProblems(ctx, ws);
    expect([...stored.problems, ...chains.problems]).toEqual([]);
    return stored;
  }

  async function createSecret(name: string, value: string): Promise<string> {
    const r = await first.post(`/workspaces/${ws}/secrets`, { name, visibility: 'masked', value });
    expect(r.status, r.text).toBe(201);
    return r.body.id as string;
  }

  async function updatedEvents(secretId: string): Promise<number[]> {
    const rows = await ctx.db
      .selectFrom('audit_events')
      .select(['data'])
      .where('chain', '=', ws)
      .where('action', '=', 'secret.updated')
      .where('target_id', '=', secretId)
      .orderBy('seq')
      .execute();
    return rows.map((r) => Number((JSON.parse(r.data) as { version: number }).version));
  }

  it.runIf(available)(
    `${CLIENTS} clients with the same If-Match, ${IF_MATCH_ROUNDS} rounds: one winner per version, the rest 412 version_conflict, versions 1..${IF_MATCH_ROUNDS + 1} each holding its winner`,
    async () => {
      const id = await createSecret('contended_rounds', 'round-0-initial');
      const url = `/workspaces/${ws}/secrets/${id}`;
      const expected = ['round-0-initial'];
      for (let round = 1; round <= IF_MATCH_ROUNDS; round++) {
        const version = round;
        // Alternate the two spellings of the precondition.
        const ifMatch = round % 2 ? String(version) : `"${version}"`;
        const replies = await Promise.all(
          clients.map((c, i) =>
            c.request('PATCH', url, { value: `round-${round}-client-${i}` }, { 'if-match': ifMatch }),
          ),
        );
        const won = replies.flatMap((r, i) => (r.status === 200 ? [i] : []));
        expect(won, `round ${round}: ${statuses(replies)}`).toHaveLength(1);
        const winner = won[0] as number;
        expect(replies[winner]?.body.version).toBe(version + 1);
        const losers = replies.filter((r) => r.status !== 200);
        expect(losers.map((r) => `${r.status} ${r.body?.code}`)).toEqual(
          Array(CLIENTS - 1).fill('412 version_conflict'),
        );
        expected.push(`round-${round}-client-${winner}`);
      }

      // The API: the last winner, versions newest first, no gap.
      const reveal = await first.post(`${url}/reveal`);
      expect(reveal.body).toEqual({ value: expected.at(-1) });
      const versions = await first.get(`${url}/versions`);
      expect(versions.body.items.map((v: { version: number }) => v.version)).toEqual(
        expected.map((_, i) => expected.length - i),
      );
      // The database: every version decrypts to the winner of its round.
      const stored = await expectConsistent();
      expect(stored.secrets.get(id)?.values).toEqual(expected);
      // One audit event per winner, none for the 412s.
      expect(await updatedEvents(id)).toEqual(expected.slice(1).map((_, i) => i + 2));
    },
    60_000,
  );

  it.runIf(available)(
    `${CLIENTS} clients read, write with If-Match and retry on 412 until ${CONTENDED_WRITES} writes succeeded: no two successes share a version, each version holds its writer's value`,
    async () => {
      const id = await createSecret('contended_free', 'free-initial');
      const url = `/workspaces/${ws}/secrets/${id}`;
      const byVersion = new Map<number, string[]>();
      const unexpected: string[] = [];
      let successes = 0;
      let conflicts = 0;
      await Promise.all(
        clients.map(async (c, i) => {
          for (let n = 0; successes < CONTENDED_WRITES && n < 200; n++) {
            const current = await c.get(url);
            if (current.status !== 200) {
              unexpected.push(`GET ${current.status} ${current.text.slice(0, 200)}`);
              return;
            }
            const value = `free-client-${i}-attempt-${n}`;
            const r = await c.request('PATCH', url, { value }, { 'if-match': String(current.body.version) });
            if (r.status === 200) {
              successes += 1;
              const v = Number(r.body.version);
              byVersion.set(v, [...(byVersion.get(v) ?? []), value]);
              if (v !== Number(current.body.version) + 1) unexpected.push(`If-Match ${current.body.version} → v${v}`);
            } else if (r.status === 412 && r.body?.code === 'version_conflict') {
              conflicts += 1;
            } else {
              unexpected.push(`PATCH ${r.status} ${r.text.slice(0, 200)}`);
              return;
            }
          }
        }),
      );
      expect(unexpected).toEqual([]);
      expect(successes).toBeGreaterThanOrEqual(CONTENDED_WRITES);
      // Real contention happened (otherwise this proves little).
      expect(conflicts).toBeGreaterThan(0);
      const shared = [...byVersion].filter(([, values]) => values.length > 1);
      expect(shared, 'versions acknowledged to more than one writer (lost updates)').toEqual([]);
      const versions = [...byVersion.keys()].sort((a, b) => a - b);
      expect(versions).toEqual(Array.from({ length: successes }, (_, i) => i + 2));

      const stored = await expectConsistent();
      const values = stored.secrets.get(id)?.values ?? [];
      expect(values).toHaveLength(successes + 1);
      expect(values[0]).toBe('free-initial');
      for (const v of versions) expect(values[v - 1], `version ${v}`).toBe(byVersion.get(v)?.[0]);
      expect(await updatedEvents(id)).toEqual(versions);
      console.log(
        `concurrency ${kind}: free-running If-Match: ${successes} writes acknowledged, ${conflicts} 412s, versions 1..${successes + 1} gap-free`,
      );
    },
    60_000,
  );

  it.runIf(available)(
    `${CLIENTS} concurrent updates without If-Match, ${UNCONDITIONAL_ROUNDS} rounds: each succeeds with a version of its own`,
    async () => {
      const id = await createSecret('unconditional', 'plain-initial');
      const url = `/workspaces/${ws}/secrets/${id}`;
      const byVersion = new Map<number, string>();
      const refused: string[] = [];
      for (let round = 1; round <= UNCONDITIONAL_ROUNDS; round++) {
        const replies = await Promise.all(
          clients.map((c, i) => c.patch(url, { value: `plain-${round}-client-${i}` }).then((r) => ({ r, i }))),
        );
        for (const { r, i } of replies) {
          if (r.status === 200) byVersion.set(Number(r.body.version), `plain-${round}-client-${i}`);
          else refused.push(`round ${round} client ${i}: ${r.status} ${r.body?.code ?? r.text.slice(0, 100)}`);
        }
      }
      // No precondition was sent, so there is none to fail: every write is applied.
      expect(
        refused.length,
        `${refused.length} of ${UNCONDITIONAL_ROUNDS * CLIENTS} refused, e.g.\n${refused.slice(0, 3).join('\n')}`,
      ).toBe(0);
      const total = UNCONDITIONAL_ROUNDS * CLIENTS;
      expect([...byVersion.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 2));
      const stored = await expectConsistent();
      const values = stored.secrets.get(id)?.values ?? [];
      expect(values).toHaveLength(total + 1);
      for (const [v, value] of byVersion) expect(values[v - 1], `version ${v}`).toBe(value);
    },
    60_000,
  );

  it.runIf(available)(
    `${CLIENTS} concurrent creates of one name in different cases, half secrets and half variables, ${CREATE_ROUNDS} rounds: one 201, the rest 409 name_taken, one row`,
    async () => {
      let secretsWon = 0;
      for (let round = 1; round <= CREATE_ROUNDS; round++) {
        const base = `race_name_${round}`;
        const spellings = clients.map(() => rng.caseVariant(base));
        const createdBefore = await auditCounts(ctx, ws, ['secret.created', 'variable.created']);
        const replies = await Promise.all(
          clients.map((c, i) =>
            // Which half is which alternates, so neither kind always starts first.
            (i + round) % 2
              ? c.post(`/workspaces/${ws}/secrets`, {
                  name: spellings[i],
                  visibility: 'masked',
                  value: `v-${round}-${i}`,
                })
              : c.post(`/workspaces/${ws}/variables`, {
                  name: spellings[i],
                  type: 'text',
                  testValue: `t-${round}-${i}`,
                }),
          ),
        );
        const won = replies.flatMap((r, i) => (r.status === 201 ? [i] : []));
        expect(won, `round ${round}: ${statuses(replies)}`).toHaveLength(1);
        const winner = won[0] as number;
        expect(replies.filter((r) => r.status !== 201).map((r) => `${r.status} ${r.body?.code}`)).toEqual(
          Array(CLIENTS - 1).fill('409 name_taken'),
        );
        const winnerId = replies[winner]?.body.id as string;
        const isSecret = (winner + round) % 2 === 1;
        if (isSecret) secretsWon += 1;

        const stored = await expectConsistent();
        const holders = [
          ...[...stored.secrets.values()].filter((s) => s.name.toLowerCase() === base).map((s) => s.id),
          ...[...stored.variables.values()].filter((v) => v.name.toLowerCase() === base).map((v) => v.id),
        ];
        expect(holders).toEqual([winnerId]);
        const registry = await ctx.db
          .selectFrom('variable_names')
          .select(['owner_kind', 'owner_id'])
          .where('workspace_id', '=', ws)
          .where('name_lower', '=', base)
          .execute();
        expect(registry).toEqual([{ owner_kind: isSecret ? 'secret' : 'variable', owner_id: winnerId }]);
        if (isSecret) expect(stored.secrets.get(winnerId)?.values).toEqual([`v-${round}-${winner}`]);
        else expect(stored.variables.get(winnerId)?.testValue).toBe(`t-${round}-${winner}`);
        // Exactly one new "created" event, for the winner: the refused creates left none.
        const createdAfter = await auditCounts(ctx, ws, ['secret.created', 'variable.created']);
        const fresh = [...createdAfter.keys()].filter((target) => !createdBefore.has(target));
        expect(fresh).toEqual([winnerId]);
      }
      console.log(
        `concurrency ${kind}: ${CREATE_ROUNDS} create races of ${CLIENTS}: ${secretsWon} won by a secret, ${CREATE_ROUNDS - secretsWon} by a variable`,
      );
    },
    60_000,
  );

  it.runIf(available)(
    `renames of ${CLIENTS / 2} variables into one name race ${CLIENTS / 2} creates of it, ${RENAME_ROUNDS} rounds: one owner, the losers keep their names`,
    async () => {
      const half = CLIENTS / 2;
      for (let round = 1; round <= RENAME_ROUNDS; round++) {
        const base = `rename_target_${round}`;
        const sources: { id: string; name: string }[] = [];
        for (let i = 0; i < half; i++) {
          const name = `rename_src_${round}_${i}`;
          const r = await first.post(`/workspaces/${ws}/variables`, { name, type: 'text', testValue: 'x' });
          expect(r.status, r.text).toBe(201);
          sources.push({ id: r.body.id, name });
        }
        const replies = await Promise.all(
          clients.map((c, i) => {
            const name = rng.caseVariant(base);
            const source = sources[i >> 1];
            return i % 2 && source
              ? c.patch(`/workspaces/${ws}/variables/${source.id}`, { name })
              : c.post(`/workspaces/${ws}/secrets`, { name, visibility: 'masked', value: `rename-race-${round}-${i}` });
          }),
        );
        const won = replies.flatMap((r, i) => (r.status === 200 || r.status === 201 ? [i] : []));
        expect(won, `round ${round}: ${statuses(replies)}`).toHaveLength(1);
        expect(
          replies.filter((r) => r.status !== 200 && r.status !== 201).map((r) => `${r.status} ${r.body?.code}`),
        ).toEqual(Array(CLIENTS - 1).fill('409 name_taken'));
        const winner = won[0] as number;
        const winnerId = replies[winner]?.body.id as string;

        const stored = await expectConsistent();
        const holders = [...stored.secrets.values(), ...stored.variables.values()].filter(
          (row) => row.name.toLowerCase() === base,
        );
        expect(holders.map((h) => h.id)).toEqual([winnerId]);
        // Every variable that lost still has its old name (and, by expectConsistent, its registry row).
        for (const source of sources) {
          if (source.id === winnerId) {
            expect(stored.variables.get(source.id)?.name.toLowerCase()).toBe(base);
          } else {
            expect(stored.variables.get(source.id)?.name).toBe(source.name);
          }
        }
        const renamed = await auditCounts(ctx, ws, ['variable.updated']);
        for (const source of sources) {
          expect(renamed.get(source.id)?.get('variable.updated') ?? 0, source.name).toBe(
            source.id === winnerId ? 1 : 0,
          );
        }
      }
    },
    60_000,
  );

  it.runIf(available)(
    `a purge races ${CLIENTS - 1} creates of the name it frees, ${PURGE_ROUNDS} rounds: the purge succeeds, at most one create wins, the rest 409 name_taken`,
    async () => {
      let createdAfterPurge = 0;
      for (let round = 1; round <= PURGE_ROUNDS; round++) {
        const base = `purge_race_${round}`;
        const id = await createSecret(base, `to-be-purged-${round}`);
        const del = await first.request('DELETE', `/workspaces/${ws}/secrets/${id}`);
        expect(del.status, del.text).toBe(204);
        const replies = await Promise.all(
          clients.map((c, i) => {
            if (i === 0) return c.request('DELETE', `/workspaces/${ws}/secrets/${id}?purge=true`);
            const name = rng.caseVariant(base);
            return i % 2
              ? c.post(`/workspaces/${ws}/secrets`, { name, visibility: 'masked', value: `after-purge-${round}-${i}` })
              : c.post(`/workspaces/${ws}/variables`, { name, type: 'text', testValue: `after-purge-${round}-${i}` });
          }),
        );
        expect(replies[0]?.status, replies[0]?.text).toBe(204);
        const creates = replies.slice(1);
        const won = creates.filter((r) => r.status === 201);
        expect(won.length, `round ${round}: ${statuses(creates)}`).toBeLessThanOrEqual(1);
        expect(creates.filter((r) => r.status !== 201).map((r) => `${r.status} ${r.body?.code}`)).toEqual(
          Array(creates.length - won.length).fill('409 name_taken'),
        );

        const stored = await expectConsistent();
        expect(stored.secrets.has(id)).toBe(false);
        const versionsLeft = await ctx.db
          .selectFrom('secret_versions')
          .select('version')
          .where('secret_id', '=', id)
          .execute();
        expect(versionsLeft).toEqual([]);
        const holders = [...stored.secrets.values(), ...stored.variables.values()].filter(
          (row) => row.name.toLowerCase() === base,
        );
        expect(holders.map((h) => h.id)).toEqual(won.map((r) => r.body.id));
        createdAfterPurge += won.length;
        // If no create won, the name is free again.
        if (won.length === 0) {
          const again = await first.post(`/workspaces/${ws}/variables`, { name: base, type: 'text' });
          expect(again.status, again.text).toBe(201);
        }
      }
      console.log(
        `concurrency ${kind}: purge vs ${CLIENTS - 1} creates, ${PURGE_ROUNDS} rounds: a create won after the purge in ${createdAfterPurge}`,
      );
    },
    60_000,
  );
});
