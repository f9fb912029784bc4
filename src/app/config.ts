/**
 * Configuration: the environment (plus an optional `.env`) turned into one
 * typed, validated object at start. A bad value stops the process with one
 * line that names the variable — never its value, which may be a key.
 */
import { existsSync, statSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const SECRETS_OVER_HTTP = ['allowed-cidrs', 'never', 'anywhere'] as const;

const intInRange = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const envSchema = z.object({
  HUSH_PORT: intInRange(0, 65_535).default(8080),
  HUSH_HOST: z.string().trim().min(1, 'must not be empty').default('127.0.0.1'),
  HUSH_DATA_DIR: z.string().trim().min(1, 'must not be empty').default('./data'),
  HUSH_DATABASE_URL: z
    .string()
    .trim()
    .refine((v) => /^postgres(ql)?:\/\/.+/.test(v), 'must be a postgres:// or postgresql:// URL')
    .optional(),
  HUSH_DATABASE_PREPARED: z.enum(['true', 'false']).default('true'),
  HUSH_DATABASE_TIMEOUT_SECONDS: intInRange(0, 3600).default(10),
  HUSH_REDIS_URL: z
    .string()
    .trim()
    .refine((v) => /^rediss?:\/\/.+/.test(v) && URL.canParse(v), 'must be a redis:// or rediss:// URL')
    .optional(),
  HUSH_MASTER_KEY: z.string().trim().min(1, 'must not be empty').optional(),
  HUSH_MASTER_KEY_FILE: z.string().trim().min(1, 'must not be empty').optional(),
  HUSH_OUTBOUND_ALLOW_CIDRS: z.string().default(''),
  HUSH_SECRETS_OVER_HTTP: z
    .enum(SECRETS_OVER_HTTP, { error: `must be one of ${SECRETS_OVER_HTTP.join(', ')}` })
    .default('allowed-cidrs'),
  HUSH_PUBLIC_URL: z
    .string()
    .trim()
    .refine(
      (v) => /^https?:\/\/[^/]+/.test(v) && URL.canParse(v),
      'must be an http(s) URL such as https://hush.example.com',
    )
    .optional(),
  HUSH_LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  HUSH_SETUP_TOKEN: z.string().trim().min(16, 'must be at least 16 characters').max(256).optional(),
  HUSH_LOGIN_LIMIT_PER_MIN: intInRange(1, 100_000).default(10),
  HUSH_REVEAL_LIMIT_PER_MIN: intInRange(1, 1_000_000).default(60),
  HUSH_RUN_TIMEOUT_SECONDS: intInRange(1, 3600).default(300),
  HUSH_SECRET_RETENTION_DAYS: intInRange(0, 3650).default(7),
  HUSH_SESSION_IDLE_MINUTES: intInRange(1, 525_600).default(12 * 60),
  HUSH_SESSION_ABSOLUTE_HOURS: intInRange(1, 8_760).default(7 * 24),
  // `true` is one proxy; a number is that many proxies in a chain (a CDN in front of a load balancer: 2).
  HUSH_TRUST_PROXY: z
    .string()
    .trim()
    .regex(/^(?:true|false|\d{1,2})$/, 'must be true, false or the number of proxies in front of Hush (0-10)')
    .transform((v) => (v === 'true' ? 1 : v === 'false' ? 0 : Number(v)))
    .pipe(z.number().int().max(10, 'must be at most 10 proxies'))
    .default(0),
  HUSH_LIST_CACHE_MB: intInRange(0, 1024).default(4),
  HUSH_METRICS_TOKEN: z.string().trim().min(16, 'must be at least 16 characters').max(256).optional(),
});

export interface OutboundAllowList {
  /** The CIDRs as written, for `doctor` and logs. */
  cidrs: string[];
  blockList: BlockList;
}

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  database:
    | { kind: 'sqlite'; file: string }
    /**
     * `preparedStatements`: name statements so PostgreSQL parses them once per connection (src/db/pg-prepared.ts).
     * `timeoutMs`: how long a statement, a new connection or a wait for a free one may take (0 or unset: no bound).
     */
    | { kind: 'postgres'; url: string; preparedStatements?: boolean; timeoutMs?: number };
  /** Shared store for rate limits across servers; unset → per-process counters. */
  redisUrl: string | undefined;
  masterKey: { kind: 'env'; value: string } | { kind: 'file'; path: string };
  outboundAllow: OutboundAllowList;
  /** Where a secret may travel over plain http (runtime/outbound.ts SecretsOverHttp). */
  secretsOverHttp: (typeof SECRETS_OVER_HTTP)[number];
  publicUrl: string;
  secureCookies: boolean;
  logLevel: (typeof LOG_LEVELS)[number];
  setupToken: string | undefined;
  loginLimitPerMin: number;
  revealLimitPerMin: number;
  /** How long one workflow run may take in all, its steps' calls included. */
  runTimeoutMs: number;
  secretRetentionDays: number;
  sessionIdleMs: number;
  sessionAbsoluteMs: number;
  /**
   * How many reverse proxies stand in front of Hush (0: none). The client IP is the address
   * the outermost of them saw, counted from the right of X-Forwarded-For: whatever a client
   * writes into that header itself stays to the left, untrusted.
   */
  trustProxy: number;
  /** Bytes of serialised list pages each server keeps (0: none; see page-cache.ts). */
  listCacheBytes: number;
  /** When set, GET /metrics answers only with this Bearer token. */
  metricsToken: string | undefined;
}

/** Raised for a configuration problem; the CLI prints `message` as the one line. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function parseCidrs(raw: string): OutboundAllowList {
  const blockList = new BlockList();
  const cidrs = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const cidr of cidrs) {
    const [address, prefixText, extra] = cidr.split('/');
    const family = address ? isIP(address) : 0;
    const prefix = Number(prefixText);
    const maxPrefix = family === 6 ? 128 : 32;
    if (
      family === 0 ||
      extra !== undefined ||
      prefixText === undefined ||
      !/^\d+$/.test(prefixText) ||
      prefix > maxPrefix
    ) {
      throw new ConfigError(`HUSH_OUTBOUND_ALLOW_CIDRS: "${cidr}" is not a CIDR such as 127.0.0.0/8 or fd00::/8`);
    }
    blockList.addSubnet(address as string, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  return { cidrs, blockList };
}

/**
 * Reads the configuration from `env`. Throws ConfigError with one line naming
 * the first bad variable. `cwd` resolves relative paths (the data directory).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  const picked: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key];
    // An empty variable means "unset", as most tools treat it.
    if (value !== undefined && value !== '') picked[key] = value;
  }
  const parsed = envSchema.safeParse(picked);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? 'configuration');
    throw new ConfigError(`${name}: ${issue?.message ?? 'is invalid'}`);
  }
  const e = parsed.data;
  const dataDir = path.resolve(cwd, e.HUSH_DATA_DIR);
  const displayHost = e.HUSH_HOST.includes(':') ? `[${e.HUSH_HOST}]` : e.HUSH_HOST;
  const publicUrl = (e.HUSH_PUBLIC_URL ?? `http://${displayHost}:${e.HUSH_PORT}`).replace(/\/+$/, '');
  if (e.HUSH_MASTER_KEY && e.HUSH_MASTER_KEY_FILE) {
    throw new ConfigError('HUSH_MASTER_KEY: set either HUSH_MASTER_KEY or HUSH_MASTER_KEY_FILE, not both');
  }
  // Kernel file systems hold no key files, and creating one's directory there loops (Node 20).
  for (const [name, dir] of [
    ['HUSH_DATA_DIR', dataDir],
    ['HUSH_MASTER_KEY_FILE', e.HUSH_MASTER_KEY_FILE && path.resolve(cwd, e.HUSH_MASTER_KEY_FILE)],
  ] as const) {
    if (dir && /^\/(proc|sys|dev)(\/|$)/.test(dir))
      throw new ConfigError(`${name}: must not be under /proc, /sys or /dev`);
  }
  return {
    port: e.HUSH_PORT,
    host: e.HUSH_HOST,
    dataDir,
    database: e.HUSH_DATABASE_URL
      ? {
          kind: 'postgres',
          url: e.HUSH_DATABASE_URL,
          preparedStatements: e.HUSH_DATABASE_PREPARED === 'true',
          timeoutMs: e.HUSH_DATABASE_TIMEOUT_SECONDS * 1000,
        }
      : { kind: 'sqlite', file: path.join(dataDir, 'hush.db') },
    redisUrl: e.HUSH_REDIS_URL,
    masterKey: e.HUSH_MASTER_KEY
      ? { kind: 'env', value: e.HUSH_MASTER_KEY }
      : { kind: 'file', path: path.resolve(cwd, e.HUSH_MASTER_KEY_FILE ?? path.join(dataDir, 'master.key')) },
    outboundAllow: parseCidrs(e.HUSH_OUTBOUND_ALLOW_CIDRS),
    secretsOverHttp: e.HUSH_SECRETS_OVER_HTTP,
    publicUrl,
    secureCookies: publicUrl.startsWith('https://'),
    logLevel: e.HUSH_LOG_LEVEL,
    setupToken: e.HUSH_SETUP_TOKEN,
    loginLimitPerMin: e.HUSH_LOGIN_LIMIT_PER_MIN,
    revealLimitPerMin: e.HUSH_REVEAL_LIMIT_PER_MIN,
    runTimeoutMs: e.HUSH_RUN_TIMEOUT_SECONDS * 1000,
    secretRetentionDays: e.HUSH_SECRET_RETENTION_DAYS,
    sessionIdleMs: e.HUSH_SESSION_IDLE_MINUTES * 60_000,
    sessionAbsoluteMs: e.HUSH_SESSION_ABSOLUTE_HOURS * 3_600_000,
    trustProxy: e.HUSH_TRUST_PROXY,
    listCacheBytes: e.HUSH_LIST_CACHE_MB * 1024 * 1024,
    metricsToken: e.HUSH_METRICS_TOKEN,
  };
}

/** Loads `.env` from `cwd` into process.env (existing variables win). */
export function loadDotEnv(cwd = process.cwd()): void {
  const file = path.join(cwd, '.env');
  if (!existsSync(file)) return;
  // A directory, a file it may not read…: one line, not a stack trace.
  if (!statSync(file).isFile()) throw new ConfigError(`${file}: is not a file`);
  try {
    process.loadEnvFile(file);
  } catch (error) {
    throw new ConfigError(`${file}: cannot be read (${(error as { code?: string }).code ?? (error as Error).message})`);
  }
}
