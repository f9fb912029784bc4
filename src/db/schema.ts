/**
 * Table types for Kysely. Portable across SQLite and PostgreSQL: text ids
 * made by the app, times as ISO-8601 UTC text (sorts as it reads), booleans
 * as 0/1 integers, JSON as text, bytes as blob/bytea (Buffer either way).
 */
import type { Generated } from 'kysely';

export interface UsersTable {
  id: string;
  email: string;
  /** Lower-cased email; the unique key. */
  email_normalized: string;
  name: string;
  password_hash: string;
  created_at: string;
  updated_at: string;
}

export interface SessionsTable {
  /** sha256 of the cookie token, hex. */
  id_hash: string;
  user_id: string;
  csrf_hash: string;
  created_at: string;
  last_seen_at: string;
  idle_expires_at: string;
  absolute_expires_at: string;
}

export interface ApiTokensTable {
  id: string;
  user_id: string;
  workspace_id: string;
  name: string;
  token_hash: string;
  /** First characters of the token after the prefix, to recognise it in lists. */
  token_hint: string;
  created_at: string;
  expires_at: string;
  last_used_at: string | null;
}

export interface WorkspacesTable {
  id: string;
  name: string;
  secret_host_binding: string;
  active_key_version: number;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
}

export interface WorkspaceKeysTable {
  workspace_id: string;
  version: number;
  root_key_id: string;
  wrapped_key: Buffer;
  created_at: string;
}

export interface RolesTable {
  id: string;
  workspace_id: string;
  name: string;
  /** How the name reads (modules/roles/role-names.ts `roleNameKey`): unique per workspace. */
  name_key: string | null;
  description: string;
  /** JSON array of permission names. */
  permissions: string;
  created_at: string;
  updated_at: string;
}

export interface MembersTable {
  workspace_id: string;
  user_id: string;
  /** A system role key ("owner", …) or a custom role id ("rol_…"). */
  role: string;
  created_at: string;
  updated_at: string;
}

export interface InvitationsTable {
  id: string;
  workspace_id: string;
  email: string;
  email_normalized: string;
  role: string;
  token_hash: string;
  invited_by: string;
  created_at: string;
  expires_at: string;
  accepted_at: string | null;
  accepted_by: string | null;
}

export interface AuditEventsTable {
  id: string;
  /** The hash chain this event belongs to: a workspace id, or "system". */
  chain: string;
  seq: number;
  at: string;
  workspace_id: string | null;
  actor_id: string | null;
  actor_type: string;
  action: string;
  target_type: string | null;
  target_id: string | null;
  ip: string | null;
  request_id: string | null;
  /** JSON object of metadata; never a value, password or token. */
  data: string;
  prev_hash: string;
  hash: string;
}

export interface AuditHeadsTable {
  chain: string;
  seq: number;
  hash: string;
  /** Audited changes so far (not reads or uses): what caches are validated against. */
  epoch: Generated<number>;
}

/** SQLite only: the process running a once-only job (src/db/job-lock.ts). */
export interface JobLocksTable {
  job: string;
  holder: string;
  host: string;
  pid: number;
  acquired_at: string;
  heartbeat_at: string;
}

/** PostgreSQL without Redis: rate-limit counts shared by every server (src/app/rate-limit-store.ts). */
export interface RateLimitCountsTable {
  key: string;
  count: number;
  /** End of the count's window, ms since the Unix epoch (the database's clock). */
  reset_at: number | string;
}

export interface SettingsTable {
  key: string;
  value: string;
  updated_at: string;
}

export interface VariableNamesTable {
  workspace_id: string;
  /** Lower-cased name: names are unique per workspace regardless of case. */
  name_lower: string;
  owner_kind: 'variable' | 'secret';
  owner_id: string;
}

export interface VariablesTable {
  id: string;
  workspace_id: string;
  name: string;
  type: string;
  description: string;
  /** JSON text of the typed value, or null. */
  test_value: string | null;
  fallback_value: string | null;
  created_at: string;
  created_by: string | null;
  updated_at: string;
  updated_by: string | null;
}

/** Secret metadata. Deliberately holds no value: values live only in secret_versions, encrypted. */
export interface SecretsTable {
  id: string;
  workspace_id: string;
  name: string;
  visibility: 'masked' | 'restricted';
  description: string;
  /** JSON array of host patterns. */
  allowed_hosts: string;
  hosts_pinned_at: string | null;
  version: number;
  /** Moved by every change to the secret (its version only by new values): the ETag's second part. */
  revision: number;
  created_at: string;
  created_by: string | null;
  updated_at: string;
  updated_by: string | null;
  last_used_at: string | null;
  deleted_at: string | null;
  deleted_by: string | null;
}

export interface SecretVersionsTable {
  secret_id: string;
  version: number;
  workspace_id: string;
  /** The workspace key version the value is encrypted under. */
  key_version: number;
  /** 0x01 ‖ iv ‖ ciphertext ‖ tag, AAD-bound to (workspace, secret, version, key version). */
  ciphertext: Buffer;
  created_at: string;
  created_by: string | null;
}

export interface WorkflowsTable {
  id: string;
  workspace_id: string;
  name: string;
  start_block_id: string | null;
  /** JSON array of blocks (see modules/workflows/block-schema.ts). */
  blocks: string;
  /** How many blocks `blocks` holds: the list reads this, never the blocks. */
  block_count: number;
  /** Moved by every save: the workflow's ETag, checked against If-Match. */
  revision: number;
  created_at: string;
  created_by: string | null;
  updated_at: string;
  updated_by: string | null;
}

export interface WorkflowSecretRefsTable {
  workspace_id: string;
  workflow_id: string;
  block_id: string;
  field: string;
  secret_name_lower: string;
}

/** A run or a Send request. Every text in it was redacted before it was written. */
export interface RunsTable {
  id: string;
  workspace_id: string;
  workflow_id: string | null;
  kind: 'run' | 'send';
  status: 'succeeded' | 'failed';
  started_at: string;
  finished_at: string;
  started_by: string | null;
  variables: string;
  steps: string;
  /** How many steps `steps` holds: lists read this, never the record. */
  step_count: number;
}

/** A run as stored: its record, and where its workflow's list shows it. */
export interface StoredRunsTable extends RunsTable {
  /**
   * Place in the workflow's list (newest highest), assigned in the insert
   * (the run's end) under the run-list lock, so rows commit in this order
   * and a page cursor never passes a row still to come.
   */
  list_seq: Generated<number>;
}

export interface Database {
  users: UsersTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  workspaces: WorkspacesTable;
  workspace_keys: WorkspaceKeysTable;
  roles: RolesTable;
  members: MembersTable;
  invitations: InvitationsTable;
  audit_events: AuditEventsTable;
  audit_heads: AuditHeadsTable;
  settings: SettingsTable;
  job_locks: JobLocksTable;
  rate_limit_counts: RateLimitCountsTable;
  variable_names: VariableNamesTable;
  variables: VariablesTable;
  secrets: SecretsTable;
  secret_versions: SecretVersionsTable;
  workflows: WorkflowsTable;
  workflow_secret_refs: WorkflowSecretRefsTable;
  runs: StoredRunsTable;
}
