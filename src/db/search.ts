/** Case-insensitive "name contains" search, portable across SQLite and PostgreSQL. */
import { type RawBuilder, sql } from 'kysely';

/** `lower(name) LIKE '%q%'` with `%`, `_` and `\` in `q` matched literally. */
export function nameContains(q: string): RawBuilder<boolean> {
  const pattern = `%${q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  return sql<boolean>`lower(name) like ${pattern} escape '\\'`;
}
