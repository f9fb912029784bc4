/**
 * What every module may depend on, built once at start (server assembly) and
 * handed down. Modules take the narrowest slice they need (`Pick<…>`).
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { RootKeyProvider } from '../crypto/root-keys.js';
import type { DatabaseKind, Db } from '../db/database.js';
import type { AuditWriter } from '../modules/audit/audit-log.js';
import type { AuditQueue } from '../modules/audit/audit-queue.js';
import type { WorkspaceCache } from '../modules/workspaces/workspace-cache.js';
import type { WorkspaceKeyring } from '../modules/workspaces/workspace-keyring.js';
import type { OutboundClient } from '../runtime/outbound.js';
import type { Config } from './config.js';
import type { PasswordHasher } from './passwords.js';

export interface AppContext {
  config: Config;
  db: Db;
  dbKind: DatabaseKind;
  rootKeys: RootKeyProvider;
  keyring: WorkspaceKeyring;
  /** Hot-path reads cached per workspace, validated by its change epoch on every request. */
  cache: WorkspaceCache;
  audit: AuditWriter;
  /** Group-committed audit events of reads and uses (reveals, secret uses, run starts). */
  auditQueue: AuditQueue;
  passwords: PasswordHasher;
  /** The one outbound HTTP client (SSRF-guarded), shared by every execution. */
  outbound: OutboundClient;
  /** Present when HUSH_REDIS_URL is set: rate limits are counted there, across servers. */
  redis: Redis | undefined;
  log: Logger;
}
