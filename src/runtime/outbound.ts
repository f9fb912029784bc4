/**
 * The one way Hush makes an outbound HTTP request (undici). Every new
 * connection is checked by the SSRF guard on the address it actually
 * connects to — after DNS resolution, IP literals included — so DNS
 * rebinding cannot slip past a check done earlier. One call is one hop:
 * redirects are followed by the executor, which re-checks hosts and drops
 * secrets per hop. Responses are size-capped and time-limited.
 */
import { lookup } from 'node:dns';
import { type BlockList, isIP } from 'node:net';
import { Agent, buildConnector, type Dispatcher, errors as undiciErrors } from 'undici';
import { type AddressVerdict, checkAddress, inAllowList } from './address-guard.js';

export type OutboundFailureCode =
  | 'outbound_blocked'
  | 'insecure_transport'
  | 'upstream_timeout'
  | 'response_too_large'
  | 'upstream_unreachable';

/** A call that did not complete; `message` never holds a request or response body. */
export class OutboundFailure extends Error {
  override name = 'OutboundFailure';
  constructor(
    readonly code: OutboundFailureCode,
    message: string,
  ) {
    super(message);
  }
}

export interface HopRequest {
  method: string;
  url: URL;
  headers: [string, string][];
  body?: string | Buffer | undefined;
  /** Whether the request carries a secret: over plain http only where `secretsOverHttp` allows. */
  carriesSecret?: boolean;
  timeoutMs: number;
  maxResponseBytes: number;
}

export interface HopResponse {
  status: number;
  headers: [string, string][];
  body: Buffer;
}

export interface OutboundClient {
  /**
   * Resolves `url`'s host and applies the SSRF rules — and, for a request
   * that carries a secret, the plain-http rule — without connecting, so a
   * call that will be refused is refused before anything else happens (such
   * as pinning a secret to that host). The connector checks again. Gives up
   * (upstream_timeout) after `timeoutMs`.
   */
  checkDestination(url: URL, timeoutMs?: number, carriesSecret?: boolean): Promise<void>;
  send(hop: HopRequest): Promise<HopResponse>;
  close(): Promise<void>;
}

/** Address verdicts remembered per client. */
const VERDICTS_KEPT = 1024;
/**
 * Connect timeouts (TCP and TLS handshake) a call may get, in ms: the largest
 * one within what the call has left (its block's timeout, less earlier
 * redirect hops), so a peer that stalls the handshake cannot hold a call past
 * its timeout — one pool per value in use, no timer or registration per call.
 */
const CONNECT_TIMEOUTS = [250, 500, 1000, 2000, 5000, 10_000] as const;
/** Call timeouts below this get a timer of their own (undici's own tick about once a second). */
const PRECISE_TIMEOUT_BELOW_MS = 5000;
/** A longer call whose answer is still arriving this long after it started gets a timer at its deadline. */
const LATE_MS = 250;

/**
 * Where a request carrying a secret may go over plain http (no TLS):
 * `allowed-cidrs` only to addresses inside the operator's allow list
 * (HUSH_OUTBOUND_ALLOW_CIDRS — their own networks, loopback among them),
 * `never` nowhere, `anywhere` wherever the SSRF guard lets a call go.
 */
export type SecretsOverHttp = 'allowed-cidrs' | 'never' | 'anywhere';

export function createOutboundClient(options: {
  allow: BlockList;
  connectTimeoutMs?: number;
  secretsOverHttp?: SecretsOverHttp;
}): OutboundClient {
  const maxConnectMs = options.connectTimeoutMs ?? 10_000;
  const overHttp = options.secretsOverHttp ?? 'allowed-cidrs';
  // An address's verdict, and whether it lies inside the allow list, depend
  // only on the address and the allow list: kept for the addresses seen last
  // (most calls go to a few hosts).
  const judged = new Map<string, { verdict: AddressVerdict; inAllow: boolean }>();
  const judge = (address: string) => {
    let entry = judged.get(address);
    if (entry === undefined) {
      if (judged.size >= VERDICTS_KEPT) judged.clear();
      entry = { verdict: checkAddress(address, options.allow), inAllow: inAllowList(address, options.allow) };
      judged.set(address, entry);
    }
    return entry;
  };
  const blocked = (host: string, reason: string) =>
    new OutboundFailure('outbound_blocked', `Refused to connect to ${host}: ${reason}.`);
  /** The refusal of `address` for a secret over plain http, if it is one. */
  const cleartextRefusal = (host: string, address: string): OutboundFailure | null =>
    overHttp === 'anywhere' || (overHttp === 'allowed-cidrs' && judge(address).inAllow)
      ? null
      : new OutboundFailure(
          'insecure_transport',
          `Refused to send a secret to ${host} over plain http: use https${
            overHttp === 'never' ? '' : ', or open the address range with HUSH_OUTBOUND_ALLOW_CIDRS'
          }.`,
        );

  /**
   * The address `host` may be reached at, or an OutboundFailure. `cleartext`:
   * the request carries a secret over plain http, so every address must also
   * pass cleartextRefusal.
   */
  const resolveChecked = (
    host: string,
    cleartext: boolean,
    done: (error: OutboundFailure | null, address?: string) => void,
  ) => {
    const literal = host.startsWith('[') ? host.slice(1, -1) : host;
    if (isIP(literal)) {
      const { verdict } = judge(literal);
      if (!verdict.allowed) return done(blocked(host, verdict.reason));
      return done(cleartext ? cleartextRefusal(host, literal) : null, literal);
    }
    lookup(host, { all: true, verbatim: true }, (error, addresses) => {
      if (error || addresses.length === 0)
        return done(new OutboundFailure('upstream_unreachable', `Could not resolve ${host}.`));
      // Any forbidden answer refuses the host: no picking a "good" record.
      for (const a of addresses) {
        const { verdict } = judge(a.address);
        if (!verdict.allowed) return done(blocked(`${host} (${a.address})`, verdict.reason));
        const refusal = cleartext && cleartextRefusal(host, a.address);
        if (refusal) return done(refusal);
      }
      done(null, (addresses[0] as { address: string }).address);
    });
  };

  const connectWithin = (timeout: number, cleartext: boolean): buildConnector.connector => {
    const base = buildConnector({ timeout });
    return (opts, callback) => {
      const host = opts.hostname;
      resolveChecked(host, cleartext, (error, address) => {
        if (error || address === undefined) return callback(error ?? blocked(host, 'no address'), null);
        if (isIP(host.startsWith('[') ? host.slice(1, -1) : host)) return base(opts, callback);
        // Connect to the very address checked; TLS still verifies the name.
        base({ ...opts, hostname: address, servername: opts.servername || host }, callback);
      });
    };
  };

  /**
   * Pools by connect timeout; requests carrying a secret over plain http get
   * pools of their own (negative keys), whose connector also applies the
   * plain-http rule — a connection another request opened is never reused
   * for them unchecked.
   */
  const agents = new Map<number, Agent>();
  /** The pool whose connect timeout is the largest within `leftMs` (the smallest when none is). */
  const agentFor = (leftMs: number, cleartext: boolean): Agent => {
    let timeout = Math.min(CONNECT_TIMEOUTS[0], maxConnectMs);
    for (const t of CONNECT_TIMEOUTS) if (t <= leftMs && t <= maxConnectMs) timeout = t;
    if (leftMs >= maxConnectMs) timeout = maxConnectMs;
    const key = cleartext ? -timeout : timeout;
    let agent = agents.get(key);
    if (!agent) {
      agent = new Agent({ connect: connectWithin(timeout, cleartext), keepAliveTimeout: 10_000, connections: 128 });
      agents.set(key, agent);
    }
    return agent;
  };

  return {
    checkDestination: (url, timeoutMs, carriesSecret = false) =>
      new Promise<void>((resolve, reject) => {
        let answered = false;
        let timer: NodeJS.Timeout | undefined;
        resolveChecked(url.hostname, carriesSecret && url.protocol === 'http:', (error) => {
          answered = true;
          clearTimeout(timer);
          if (error) reject(error);
          else resolve();
        });
        // A name server that does not answer must not hold the call past its timeout (an IP
        // literal is answered at once, without a timer).
        if (!answered && timeoutMs !== undefined) {
          timer = setTimeout(
            () =>
              reject(
                new OutboundFailure('upstream_timeout', `No answer resolving ${url.hostname} within ${timeoutMs} ms.`),
              ),
            timeoutMs,
          );
        }
      }),

    send(hop) {
      // undici's dispatch API straight, not request(): no Readable stream,
      // async resource or async iterator per call (about a third of a
      // loopback call's CPU). undici bounds the wait for headers and between
      // body chunks; the deadline bounds the whole body (a slow drip),
      // without a timer per request unless the timeout is short (below).
      const deadline = Date.now() + hop.timeoutMs;
      return new Promise<HopResponse>((resolve, reject) => {
        let status = 0;
        let headers: [string, string][] = [];
        const chunks: Buffer[] = [];
        let size = 0;
        let settled = false;
        let started: Dispatcher.DispatchController | undefined;
        const expire = () => {
          started?.abort(timedOut(hop));
          fail(timedOut(hop));
        };
        // undici's header and body timers tick about once a second: a short timeout gets a timer
        // of its own (300 ms waited a second). Long ones, the default 10 s among them, do without
        // while the answer is quick; one that is still coming LATE_MS in gets a timer then
        // (undici's body timer restarts with each chunk: a byte just before the deadline, then
        // silence, held the call for twice its timeout).
        let timer = hop.timeoutMs < PRECISE_TIMEOUT_BELOW_MS ? setTimeout(expire, hop.timeoutMs) : undefined;
        const late = () => {
          if (timer === undefined && !settled && Date.now() - (deadline - hop.timeoutMs) > LATE_MS)
            timer = setTimeout(expire, Math.max(0, deadline - Date.now()));
        };
        const fail = (error: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(toFailure(error, hop));
        };
        const handler: Dispatcher.DispatchHandler = {
          onRequestStart(controller) {
            started = controller;
            if (settled) controller.abort(timedOut(hop)); // timed out while waiting for a connection
          },
          onResponseStart(_controller, statusCode, responseHeaders) {
            late();
            if (statusCode < 200) return; // 1xx: the final answer follows
            status = statusCode;
            headers = headerPairs(responseHeaders);
          },
          onResponseData(controller, chunk) {
            if (settled) return;
            if (Date.now() > deadline) {
              controller.abort(timedOut(hop));
              return;
            }
            late();
            size += chunk.length;
            if (size > hop.maxResponseBytes) {
              controller.abort(
                new OutboundFailure(
                  'response_too_large',
                  `The response is larger than the ${hop.maxResponseBytes}-byte limit of this block.`,
                ),
              );
              return;
            }
            chunks.push(chunk);
          },
          onResponseEnd() {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve({
              status,
              headers,
              body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size),
            });
          },
          onResponseError(_controller, error) {
            fail(error);
          },
        };
        try {
          agentFor(hop.timeoutMs, hop.carriesSecret === true && hop.url.protocol === 'http:').dispatch(
            {
              origin: hop.url.origin,
              path: hop.url.pathname + hop.url.search,
              method: hop.method as Dispatcher.HttpMethod,
              headers: hop.headers.flat(),
              body: hop.body ?? null,
              headersTimeout: hop.timeoutMs,
              bodyTimeout: hop.timeoutMs,
            },
            handler,
          );
        } catch (error) {
          fail(error);
        }
      });
    },
    close: async () => {
      await Promise.all([...agents.values()].map((agent) => agent.close()));
    },
  };
}

/** Response headers as name/value pairs (names lowercase; a repeated header gives one pair per value). */
function headerPairs(parsed: Record<string, string | string[] | undefined>): [string, string][] {
  const pairs: [string, string][] = [];
  for (const name in parsed) {
    const value = parsed[name];
    if (Array.isArray(value)) for (const item of value) pairs.push([name, item]);
    else if (value !== undefined) pairs.push([name, value]);
  }
  return pairs;
}

function timedOut(hop: HopRequest): OutboundFailure {
  return new OutboundFailure('upstream_timeout', `No complete answer from ${hop.url.host} within ${hop.timeoutMs} ms.`);
}

function toFailure(error: unknown, hop: HopRequest): OutboundFailure {
  if (error instanceof OutboundFailure) return error;
  const cause = (error as { cause?: unknown })?.cause;
  if (cause instanceof OutboundFailure) return cause;
  const name = (error as { name?: string })?.name;
  if (
    name === 'TimeoutError' ||
    name === 'AbortError' ||
    error instanceof undiciErrors.HeadersTimeoutError ||
    error instanceof undiciErrors.BodyTimeoutError ||
    error instanceof undiciErrors.ConnectTimeoutError
  ) {
    return timedOut(hop);
  }
  const code = (error as { code?: string })?.code ?? (cause as { code?: string })?.code;
  return new OutboundFailure('upstream_unreachable', `Could not reach ${hop.url.host}${code ? ` (${code})` : ''}.`);
}
