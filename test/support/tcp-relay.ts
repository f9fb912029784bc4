/**
 * A TCP relay on 127.0.0.1 between Hush and a real server (PostgreSQL,
 * Redis) that a test can cut (listener closed, connections dropped),
 * restore on the same port, or stall (connections accepted and kept, nothing
 * passed on: a network that silently drops packets).
 */
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

export class TcpRelay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private stalledChunks: (() => void)[] | undefined;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** Connections stay open (new ones are accepted too), but nothing passes until `resume`. */
  stall(): void {
    this.stalledChunks ??= [];
  }

  /** Chunks held back by `stall` so far (a query sent and not yet passed on). */
  get held(): number {
    return this.stalledChunks?.length ?? 0;
  }

  resume(): void {
    const waiting = this.stalledChunks ?? [];
    this.stalledChunks = undefined;
    for (const send of waiting) send();
  }

  private pass(to: Socket, chunk: Buffer): void {
    if (this.stalledChunks) this.stalledChunks.push(() => to.write(chunk));
    else to.write(chunk);
  }

  async up(): Promise<void> {
    if (this.server) return;
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.on('data', (chunk: Buffer) => this.pass(upstream, chunk));
      upstream.on('data', (chunk: Buffer) => this.pass(client, chunk));
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Refuses new connections and drops every open one. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.stalledChunks = undefined;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
}
