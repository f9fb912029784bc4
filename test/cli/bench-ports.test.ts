/**
 * Ports for child servers (bench/support/ports.ts): outside the kernel's
 * ephemeral range, one block per Vitest worker, never a port in use.
 */
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createPortAllocator, freePort, portBlock, portRange } from '../../bench/support/ports.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
});

function occupy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => {
      servers.push(s);
      resolve(true);
    });
  });
}

describe('child server ports', () => {
  it('lie below the ephemeral range when there is room, else above it, else inside it', () => {
    expect(portRange([32_768, 60_999])).toEqual([20_768, 32_767]);
    expect(portRange([10_000, 60_999])).toEqual([1_024, 9_999]);
    expect(portRange([1_024, 60_999])).toEqual([61_000, 65_535]);
    expect(portRange([1_024, 65_535])).toEqual([1_024, 65_535]);
  });

  it('give each worker its own block inside the range', () => {
    const range = portRange([32_768, 60_999]);
    const blocks = Array.from({ length: 64 }, (_, slot) => portBlock(slot, range));
    for (const [i, [first, size]] of blocks.entries()) {
      expect(size).toBeGreaterThanOrEqual(100);
      expect(first).toBeGreaterThanOrEqual(range[0]);
      expect(first + size - 1).toBeLessThanOrEqual(range[1]);
      const next = blocks[i + 1];
      if (next) expect(first + size).toBeLessThanOrEqual(next[0]);
    }
    // Slots past the last wrap round rather than leave the range.
    expect(portBlock(64, range)).toEqual(blocks[0]);
  });

  it("hand out distinct, listenable ports from this worker's block", async () => {
    const [first, size] = portBlock(Number(process.env.VITEST_POOL_ID ?? 0));
    const ports = [];
    for (let i = 0; i < 5; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(5);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(first);
      expect(port).toBeLessThan(first + size);
      expect(await occupy(port)).toBe(true);
    }
  });

  it('skip a port something listens on, and fail clearly when the block is full', async () => {
    // Two ports of this worker's block (no other worker is handed them); the lower one gets a listener.
    const [low, high] = [await freePort(), await freePort()].sort((a, b) => a - b) as [number, number];
    expect(await occupy(low)).toBe(true);
    const port = await createPortAllocator(low, high - low + 1, 0)();
    expect(port).toBeGreaterThan(low);
    expect(port).toBeLessThanOrEqual(high);
    expect(await createPortAllocator(low, 1, 0)().catch((e: Error) => e.message)).toBe(`no free port in ${low}–${low}`);
  });
});
