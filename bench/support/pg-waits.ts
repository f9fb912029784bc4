/** What PostgreSQL connections of a database were doing while something ran (pg_stat_activity samples). */
import pg from 'pg';
import { PG_ADMIN_URL } from './databases.js';

export /**
 * Samples pg_stat_activity for `database` every 20 ms until `done` settles:
 * the wait event (or state) of each of Hush's connections, as shares.
 */
async function samplePostgresWaits<T>(database: string, done: Promise<T>): Promise<{ label: string; share: number }[]> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  const counts = new Map<string, number>();
  let finished = false;
  const settled = done.then(
    () => {
      finished = true;
    },
    () => {
      finished = true;
    },
  );
  try {
    while (!finished) {
      const { rows } = await client.query<{ what: string; n: number }>(
        `select coalesce(wait_event_type || ': ' || wait_event, state, 'unknown') as what, count(*)::int as n
           from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() group by 1`,
        [database],
      );
      for (const r of rows) counts.set(r.what, (counts.get(r.what) ?? 0) + r.n);
      await Promise.race([settled, new Promise((resolve) => setTimeout(resolve, 20))]);
    }
  } finally {
    await client.end().catch(() => {});
  }
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([label, n]) => ({ label, share: total > 0 ? n / total : 0 }));
}
