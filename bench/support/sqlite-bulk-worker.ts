/**
 * The SQLite bulk writer's process (see support/bulk-write.ts): writes each
 * chunk it receives in one transaction, on its own connection to the file
 * given as argv[2], while the parent builds the next chunk.
 */
import { type ChunkRows, openSqliteBulk } from './bulk-write.js';

const writer = openSqliteBulk(process.argv[2] as string);

/** Structured clone turns Buffers into plain Uint8Arrays: make them Buffers again for better-sqlite3. */
function revive(rows: ChunkRows): ChunkRows {
  for (const table of Object.values(rows) as unknown[][][]) {
    for (const row of table) {
      for (let i = 0; i < row.length; i++) {
        const v = row[i];
        if (v instanceof Uint8Array && !Buffer.isBuffer(v)) row[i] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      }
    }
  }
  return rows;
}

process.on('message', (m: { type: 'write' | 'close'; id: number; rows?: ChunkRows }) => {
  try {
    if (m.type === 'write' && m.rows) writer.write(revive(m.rows));
    else if (m.type === 'close') writer.close();
    process.send?.({ id: m.id });
  } catch (error) {
    process.send?.({ id: m.id, error: error instanceof Error ? error.message : String(error) });
  }
});
process.on('disconnect', () => process.exit(0));
