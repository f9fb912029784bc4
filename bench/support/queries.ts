/**
 * Seeing the SQL a request runs, without touching src/: a Kysely plugin on a
 * second server built over the same context records every compiled query,
 * which can then be replayed alone (database time without HTTP) or EXPLAINed.
 */
import {
  CompiledQuery as Compiled,
  type CompiledQuery,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
} from 'kysely';
import type { AppContext } from '../../src/app/context.js';
import type { Db } from '../../src/db/database.js';
import { compiled } from './compiled.js';

/** SQL with its parameter numbers blanked (`$3` → `$`), to find one statement inside another. */
const withoutNumbers = (text: string) => text.replace(/\$\d+/g, '$');

export class QueryRecorder implements KyselyPlugin {
  readonly queries: CompiledQuery[] = [];

  constructor(private readonly base: Db) {}

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const query = this.base.getExecutor().compileQuery(args.node, args.queryId);
    // A subquery built from the recording database is seen first, on its own: it is
    // part of the statement that follows (the same text inside it), not one of its own.
    const inner = withoutNumbers(query.sql);
    const last = this.queries.at(-1);
    if (last && inner.includes(`(${withoutNumbers(last.sql)})`)) this.queries.pop();
    this.queries.push(query);
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }

  clear(): void {
    this.queries.length = 0;
  }
}

/** The context with a recording database, for a second, recording server. */
export async function recordingContext(ctx: AppContext): Promise<{ ctx: AppContext; recorder: QueryRecorder }> {
  const { createAuditQueue } =
    await compiled<typeof import('../../src/modules/audit/audit-queue.js')>('modules/audit/audit-queue.js');
  const recorder = new QueryRecorder(ctx.db);
  const db = ctx.db.withPlugin(recorder);
  // The group-committed audit writes go through their own queue: give it the recording database too.
  return { ctx: { ...ctx, db, auditQueue: createAuditQueue({ db, kind: ctx.dbKind, audit: ctx.audit }) }, recorder };
}

/** `FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR KEY SHARE`. */
const LOCKING_READ = /\bfor\s+((no\s+)?key\s+)?(update|share)\b/i;

/**
 * Read-only statements that are safe to replay: no locking reads, and none
 * recorded while a statement's shape was compiled with stand-ins for its
 * values (`boundQuery` in src/db/database.ts) rather than run.
 */
export function replayable(queries: readonly CompiledQuery[]): CompiledQuery[] {
  return queries.filter(
    (q) =>
      /^\s*select\b/i.test(q.sql) &&
      !LOCKING_READ.test(q.sql) &&
      !q.parameters.some((p) => typeof p === 'string' && p.startsWith('\u0000hush-slot:')),
  );
}

/** Runs `queries` once, in order; returns the elapsed milliseconds. */
export async function replay(db: Db, queries: readonly CompiledQuery[]): Promise<number> {
  const t0 = performance.now();
  for (const q of queries) await db.executeQuery(q);
  return performance.now() - t0;
}

/** The database's plan for `query`: EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite. */
export async function explain(ctx: AppContext, query: CompiledQuery): Promise<string> {
  if (ctx.dbKind === 'postgres') {
    const result = await ctx.db.executeQuery<Record<string, string>>(
      Compiled.raw(`explain (analyze, buffers, costs off) ${query.sql}`, [...query.parameters]),
    );
    return result.rows.map((r) => Object.values(r)[0]).join('\n');
  }
  const result = await ctx.db.executeQuery<{ id: number; parent: number; detail: string }>(
    Compiled.raw(`explain query plan ${query.sql}`, [...query.parameters]),
  );
  const depth = new Map<number, number>([[0, -1]]);
  return result.rows
    .map((r) => {
      const d = (depth.get(r.parent) ?? -1) + 1;
      depth.set(r.id, d);
      return `${'  '.repeat(d)}${r.detail}`;
    })
    .join('\n');
}

/** The SQL with its parameters, for the report. */
export function describe(query: CompiledQuery): string {
  const params = query.parameters.map((p) => (typeof p === 'string' ? `'${p}'` : String(p)));
  return `${query.sql}\n-- parameters: ${params.join(', ')}`;
}
