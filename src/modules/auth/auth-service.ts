/**
 * First-run setup, sign-in and sign-out. Setup is guarded by a one-time token
 * (printed at first start, or HUSH_SETUP_TOKEN); each node that prints one
 * stores only its hash, and the first successful setup consumes them all.
 */
import { sql } from 'kysely';
import type { AppContext } from '../../app/context.js';
import { AppError, ConflictError, UnauthenticatedError } from '../../app/errors.js';
import { emailSchema } from '../../app/http.js';
import { hashToken, newId, newToken, nowIso } from '../../app/ids.js';
import type { UsersTable } from '../../db/schema.js';
import type { AuditContext } from '../audit/audit-log.js';
import { insertWorkspace } from '../workspaces/workspace-service.js';
import type { SessionStore } from './session-store.js';

const SETUP_KEY_PREFIX = 'setup_token:';

type Deps = Pick<AppContext, 'db' | 'audit' | 'keyring' | 'passwords' | 'config'> & { sessions: SessionStore };

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

export function presentUser(user: Pick<UsersTable, 'id' | 'email' | 'name'>) {
  return { id: user.id, email: user.email, name: user.name };
}

export async function setupNeeded(db: AppContext['db']): Promise<boolean> {
  const row = await db.selectFrom('users').select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow();
  return Number(row.n) === 0;
}

/** What `hush serve` prints while setup is pending. */
export interface SetupPrompt {
  /** The setup page. It holds the token (in the fragment) only when the token was generated. */
  url: string;
  /**
   * `generated`: a fresh token, which only this URL tells. `configured`:
   * HUSH_SETUP_TOKEN, which the operator already has — set precisely so that
   * no token reaches the output (and the logs that collect it).
   */
  token: 'generated' | 'configured';
}

/**
 * Called at start: when no user exists yet, registers a setup token and
 * returns what to print (null when setup is done).
 */
export async function prepareSetup(deps: Pick<AppContext, 'db' | 'config'>): Promise<SetupPrompt | null> {
  if (!(await setupNeeded(deps.db))) return null;
  const configured = deps.config.setupToken;
  const token = configured ?? newToken();
  await deps.db
    .insertInto('settings')
    .values({ key: SETUP_KEY_PREFIX + hashToken(token), value: 'pending', updated_at: nowIso() })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  const page = `${deps.config.publicUrl}/setup`;
  return configured === undefined
    ? { url: `${page}#token=${encodeURIComponent(token)}`, token: 'generated' }
    : { url: page, token: 'configured' };
}

export function createAuthService(deps: Deps) {
  const { db, passwords, sessions } = deps;

  return {
    setupNeeded: () => setupNeeded(db),

    async setup(
      audit: AuditContext,
      input: { token: string; email: string; password: string; name: string; workspaceName: string },
    ) {
      if (!(await setupNeeded(db))) throw new ConflictError('setup_done', 'Hush is already set up; sign in instead.');
      const passwordHash = await passwords.hash(input.password);
      const result = await db.transaction().execute(async (trx) => {
        // Consuming the token rows is the one-time gate, safe across nodes: every server's token
        // at once, in one statement (rows locked in one order — two servers each deleting their
        // own and then the other's deadlocked), and this request's must have been among them.
        const consumed = await trx
          .deleteFrom('settings')
          // By its first characters: a range ('setup_token:' ≤ key < 'setup_token;') is empty under a
          // collation that ignores punctuation (PostgreSQL en_US, ICU), and LIKE reads `_` as a wildcard.
          .where(sql<string>`substr(key, 1, ${SETUP_KEY_PREFIX.length})`, '=', SETUP_KEY_PREFIX)
          .returning('key')
          .execute();
        if (!consumed.some((row) => row.key === SETUP_KEY_PREFIX + hashToken(input.token))) {
          if (!(await setupNeeded(trx)))
            throw new ConflictError('setup_done', 'Hush is already set up; sign in instead.');
          throw new AppError(403, 'invalid_setup_token', 'The setup token is wrong or was already used.');
        }
        if (!(await setupNeeded(trx)))
          throw new ConflictError('setup_done', 'Hush is already set up; sign in instead.');
        const now = nowIso();
        const user = {
          id: newId('usr'),
          email: input.email.trim(),
          email_normalized: normalizeEmail(input.email),
          name: input.name,
          password_hash: passwordHash,
          created_at: now,
          updated_at: now,
        };
        await trx.insertInto('users').values(user).execute();
        const ctx = { ...audit, actorId: user.id, actorType: 'user' as const };
        await deps.audit(trx, ctx, {
          workspaceId: null,
          action: 'setup.completed',
          targetType: 'user',
          targetId: user.id,
        });
        const workspace = await insertWorkspace(deps, trx, ctx, { name: input.workspaceName, ownerId: user.id });
        return { user, workspace };
      });
      const session = await sessions.create(result.user.id);
      return { ...result, session };
    },

    async login(audit: AuditContext, input: { email: string; password: string }) {
      const emailNormalized = normalizeEmail(input.email);
      const user = await db
        .selectFrom('users')
        .selectAll()
        .where('email_normalized', '=', emailNormalized)
        .executeTakeFirst();
      let ok = false;
      if (user) ok = await passwords.verify(user.password_hash, input.password);
      else await passwords.verifyDummy(input.password);
      if (!user || !ok) {
        // Record the attempted email only when it looks like one, so a password
        // typed into the email field never lands in the audit trail.
        const attempted = emailSchema.safeParse(input.email).success ? emailNormalized : '(not an email address)';
        await db.transaction().execute((trx) =>
          deps.audit(trx, audit, {
            workspaceId: null,
            action: 'auth.login_failed',
            ...(user ? { targetType: 'user', targetId: user.id } : {}),
            data: { email: attempted, reason: user ? 'wrong_password' : 'unknown_account' },
          }),
        );
        throw new UnauthenticatedError('Email or password is wrong.');
      }
      const session = await db.transaction().execute(async (trx) => {
        const created = await sessions.create(user.id, trx);
        await deps.audit(
          trx,
          { ...audit, actorId: user.id, actorType: 'user' },
          {
            workspaceId: null,
            action: 'auth.login',
            targetType: 'user',
            targetId: user.id,
          },
        );
        return created;
      });
      return { user, session };
    },

    async logout(audit: AuditContext, sessionHash: string) {
      await db.transaction().execute(async (trx) => {
        await sessions.destroy(sessionHash, trx);
        await deps.audit(trx, audit, {
          workspaceId: null,
          action: 'auth.logout',
          targetType: 'user',
          targetId: audit.actorId ?? undefined,
        });
      });
    },

    async user(userId: string) {
      const user = await db
        .selectFrom('users')
        .select(['id', 'email', 'name'])
        .where('id', '=', userId)
        .executeTakeFirst();
      if (!user) throw new UnauthenticatedError();
      return user;
    },
  };
}

export type AuthService = ReturnType<typeof createAuthService>;
