/**
 * Every migration, in order. Listed statically (not read from the folder) so
 * the same list works from TypeScript sources, the build and any bundler.
 * Append new ones; never edit one that has shipped.
 */
import type { Migration } from 'kysely';
import * as foundation from './0001-foundation.js';
import * as variablesSecrets from './0002-variables-secrets.js';
import * as workflowsRuns from './0003-workflows-runs.js';
import * as changeEpochs from './0004-change-epochs.js';
import * as roleNamesCaseInsensitive from './0005-role-names-case-insensitive.js';
import * as secretRefPaths from './0006-secret-ref-paths.js';
import * as runStepCounts from './0007-run-step-counts.js';
import * as secretRevisions from './0008-secret-revisions.js';
import * as jobLocks from './0009-job-locks.js';
import * as workflowSummaries from './0010-workflow-summaries.js';
import * as runListOrder from './0011-run-list-order.js';
import * as roleNameKeys from './0012-role-name-keys.js';
import * as rateLimitCounts from './0013-rate-limit-counts.js';

export const migrations: Record<string, Migration> = {
  '0001-foundation': foundation,
  '0002-variables-secrets': variablesSecrets,
  '0003-workflows-runs': workflowsRuns,
  '0004-change-epochs': changeEpochs,
  '0005-role-names-case-insensitive': roleNamesCaseInsensitive,
  '0006-secret-ref-paths': secretRefPaths,
  '0007-run-step-counts': runStepCounts,
  '0008-secret-revisions': secretRevisions,
  '0009-job-locks': jobLocks,
  '0010-workflow-summaries': workflowSummaries,
  '0011-run-list-order': runListOrder,
  '0012-role-name-keys': roleNameKeys,
  '0013-rate-limit-counts': rateLimitCounts,
};
