/**
 * Ports for the servers tests and benchmarks start as child processes
 * (`hush serve`, `--inspect`), which bind the port themselves.
 *
 * A port taken with `listen(0)` and closed again is free for anyone until
 * the child binds it: another Vitest worker's `listen(0)`, or an outbound
 * connection's local port, can take it in between. The child then fails to
 * bind while its health check is answered by whatever took the port — a CI
 * run drove another test file's server that way (its setup answered 403).
 *
 * So ports come from outside the kernel's ephemeral range (below it where
 * there is room, as with Linux's default 32768–60999), in one block per
 * Vitest worker (VITEST_POOL_ID; 0 outside Vitest, e.g. the benchmarks),
 * starting at a random place in the block and checked free before they are
 * handed out. Two workers never share a block, and nothing the kernel picks
 * for `listen(0)` or `connect()` falls in one.
 */
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Blocks the range is cut into: more than Vitest runs workers on any machine we know. */
const SLOTS = 64;
/** Ports reserved for the blocks, when the machine leaves that many outside its ephemeral range. */
const SPAN = 12_000;
const LOWEST = 1_024;
const HIGHEST = 65_535;

/** The kernel's ephemeral port range (Linux; its default elsewhere). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high && low <= high) return [low, high];
  } catch {
    // Not Linux: assume its default.
  }
  return [32_768, 60_999];
}

/** Where the blocks live: below the ephemeral range, else above it, else (no room) inside it, checked only by binding. */
export function portRange(ephemeral: [number, number] = ephemeralRange()): [number, number] {
  const [low, high] = ephemeral;
  if (low - LOWEST >= SPAN / 4) return [Math.max(LOWEST, low - SPAN), low - 1];
  if (HIGHEST - high >= SPAN / 4) return [high + 1, Math.min(HIGHEST, high + SPAN)];
  return [low, high];
}

/** The block of worker `slot`: `[first, size]`. */
export function portBlock(slot: number, range: [number, number] = portRange()): [number, number] {
  const size = Math.max(1, Math.floor((range[1] - range[0] + 1) / SLOTS));
  return [range[0] + (slot % SLOTS) * size, size];
}

/** Hands out ports of the block `[first, first + size)` from `start` on, each checked free first, wrapping round. */
export function createPortAllocator(first: number, size: number, start = randomInt(size)): () => Promise<number> {
  let next = start;
  return async () => {
    for (let tries = 0; tries < size; tries++) {
      const port = first + (next++ % size);
      if (await canListen(port)) return port;
    }
    throw new Error(`no free port in ${first}–${first + size - 1}`);
  };
}

/** A port on 127.0.0.1 that is free now and that no other test worker is handed. */
export const freePort = createPortAllocator(...portBlock(Number(process.env.VITEST_POOL_ID ?? 0)));

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}
