/** Column types that differ by dialect, for portable migrations. */
import { type Kysely, PostgresAdapter, sql } from 'kysely';

export function isPostgres(db: Kysely<unknown>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** Raw bytes: `bytea` on PostgreSQL, `blob` on SQLite (a Buffer either way). */
export function binaryType(db: Kysely<unknown>) {
  return isPostgres(db) ? sql`bytea` : sql`blob`;
}
