/**
 * Asking a separate, diagnostic `hush serve` (started with
 * `--inspect=127.0.0.1:<port>`) about its memory over the DevTools protocol:
 * process.memoryUsage() and V8's heap spaces, before and after a full GC.
 * Only for explaining a measurement — the measured servers run without flags.
 */
import { WebSocket } from 'undici';

export interface HeapSpace {
  name: string;
  /** Committed (MiB). */
  size: number;
  /** Live objects (MiB). */
  used: number;
}

export interface HeapReport {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  spaces: HeapSpace[];
}

const EXPRESSION = `(() => {
  const v8 = process.getBuiltinModule('v8');
  const m = process.memoryUsage();
  const mib = (n) => n / 1048576;
  return JSON.stringify({
    rss: mib(m.rss), heapTotal: mib(m.heapTotal), heapUsed: mib(m.heapUsed),
    external: mib(m.external), arrayBuffers: mib(m.arrayBuffers),
    spaces: v8.getHeapSpaceStatistics().map((s) => ({ name: s.space_name, size: mib(s.space_size), used: mib(s.space_used_size) })),
  });
})()`;

export interface InspectorSession {
  heap(): Promise<HeapReport>;
  collectGarbage(): Promise<void>;
  close(): void;
}

/** Connects to the inspector listening on 127.0.0.1:`port` (its first target). */
export async function connectInspector(port: number): Promise<InspectorSession> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
    webSocketDebuggerUrl: string;
  }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error('the inspector lists no target');
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
  });
  let nextId = 1;
  const waiting = new Map<number, (result: unknown) => void>();
  ws.onmessage = (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) {
      waiting.get(message.id)?.(message.result);
      waiting.delete(message.id);
    }
  };
  const send = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  return {
    async heap() {
      const r = (await send('Runtime.evaluate', { expression: EXPRESSION, returnByValue: true })) as {
        result?: { value?: string };
      };
      return JSON.parse(r.result?.value ?? '{}') as HeapReport;
    },
    async collectGarbage() {
      await send('HeapProfiler.collectGarbage');
    },
    close() {
      ws.close();
    },
  };
}
