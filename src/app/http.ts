/**
 * Shared HTTP vocabulary for routers: the typed Fastify instance, common zod
 * schemas (ids, pagination, problem) and cursor helpers.
 */
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyReply,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ValidationError } from './errors.js';

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;

/**
 * Answers with a JSON body serialised earlier through the route's own
 * response schema (a cached page, see page-cache.ts): Fastify sends a Buffer
 * as is, without serialising it again.
 */
export function sendSerialized(reply: FastifyReply, json: Buffer): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(json);
}

export const idSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z]{2,4}_[0-9a-z]{10,40}$/, 'is not a valid id');
export const workspaceParams = z.strictObject({ ws: idSchema });

export const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.string(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  requestId: z.string().optional(),
});

/** Problem responses for OpenAPI, keyed by status. */
export function problems(...statuses: number[]): Record<number, typeof problemSchema> {
  return Object.fromEntries(statuses.map((s) => [s, problemSchema]));
}

export const paginationQuery = {
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(200).optional(),
};

/**
 * Pagination for lists bounded by nature (a user's tokens and workspaces, a
 * workspace's members, roles and invitations, a secret's versions and
 * usages): the same `?limit=&cursor=` → `{items, nextCursor}` shape as every
 * list, paged over the list read whole. The default page holds them all
 * unless there are more than 200.
 */
export const boundedPaginationQuery = {
  limit: z.coerce.number().int().min(1).max(200).default(200),
  // A key may hold a name or an email (≤ 254 characters, up to 3 UTF-8 bytes each), base64url-encoded.
  cursor: z.string().max(4096).optional(),
};

export type SortKey = readonly (string | number)[];

function compareKeys(a: SortKey, b: SortKey): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === y) continue;
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (typeof x !== typeof y) return typeof x === 'number' ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

/** The cursor of lists ordered by name (secrets, variables, workflows). Schemas are built once: building one costs more than parsing with it. */
export const nameIdCursor = z.object({ name: z.string(), id: z.string() });

const sortKeyCursor = z
  .array(z.union([z.string().max(1024), z.number()]))
  .min(1)
  .max(6);

/**
 * One page of `items` in the order of `key` (ascending; negate a number for
 * newest first). The cursor is the last item's key, so a page boundary holds
 * when items are added or removed in between.
 */
export function pageInMemory<T>(
  items: readonly T[],
  key: (item: T) => SortKey,
  page: { limit: number; cursor?: string | undefined },
): { items: T[]; nextCursor: string | null } {
  const after = decodeCursor(page.cursor, sortKeyCursor);
  const sorted = items.map((item) => ({ item, key: key(item) })).sort((a, b) => compareKeys(a.key, b.key));
  const rest = after === undefined ? sorted : sorted.filter((e) => compareKeys(e.key, after) > 0);
  const taken = rest.slice(0, page.limit);
  const last = taken.at(-1);
  return {
    items: taken.map((e) => e.item),
    nextCursor: rest.length > page.limit && last ? encodeCursor(last.key) : null,
  };
}

export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** Decodes a cursor made by encodeCursor and checks its shape. */
export function decodeCursor<T>(cursor: string | undefined, schema: z.ZodType<T>): T | undefined {
  if (cursor === undefined) return undefined;
  try {
    const json = Buffer.from(cursor, 'base64url').toString('utf8');
    const parsed = schema.safeParse(JSON.parse(json));
    // JSON.stringify writes NUL as the escape \u0000.
    if (parsed.success && !JSON.stringify(parsed.data).includes('\\u0000')) return parsed.data;
  } catch {
    // fall through to the error below
  }
  throw new ValidationError('query.cursor: is not a cursor this API issued', [
    { path: 'query.cursor', message: 'is not a cursor this API issued' },
  ]);
}

export const emailSchema = z
  .string()
  .trim()
  .max(254)
  .pipe(z.email({ error: 'must be an email address' }));
export const passwordSchema = z
  .string()
  .min(10, 'must be at least 10 characters')
  .max(256, 'must be at most 256 characters');
const hasNoNul = (s: string) => !s.includes('\u0000');

/**
 * Why ill-formed text is refused. A lone UTF-16 surrogate (half of a pair)
 * has no UTF-8 form: SQLite and PostgreSQL would store, and an outbound
 * request would send, U+FFFD in its place, so what is read back or sent would
 * differ from what was accepted.
 */
export const ILL_FORMED_TEXT = 'must be valid Unicode text (it holds a lone surrogate)';

const isWellFormed = (s: string) => s.isWellFormed();

/** Whether every string in a JSON value, keys included, is well-formed Unicode. Iterative: any depth. */
export function holdsWellFormedText(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const current = stack.pop();
    if (typeof current === 'string') {
      if (!current.isWellFormed()) return false;
    } else if (current !== null && typeof current === 'object') {
      for (const [k, v] of Object.entries(current)) {
        if (!k.isWellFormed()) return false;
        stack.push(v);
      }
    }
  }
  return true;
}

/**
 * Any string that is stored or sent on as is (templates, paths): well-formed
 * Unicode only. Free text for people (names, descriptions) is plainText.
 */
export function wellFormedString() {
  return z.string().refine(isWellFormed, ILL_FORMED_TEXT);
}

/**
 * Free text that is stored or searched as is. NUL is refused: PostgreSQL
 * text cannot hold it and SQLite's LIKE stops at it. A lone surrogate is
 * refused: it cannot be stored unaltered (ILL_FORMED_TEXT).
 */
export function plainText(max: number) {
  return z
    .string()
    .trim()
    .max(max, `must be at most ${max} characters`)
    .refine(hasNoNul, 'must not contain NUL characters')
    .refine(isWellFormed, ILL_FORMED_TEXT);
}

export const displayNameSchema = plainText(100).refine((s) => s.length > 0, 'must not be empty');

export const userSchema = z.object({ id: z.string(), email: z.string(), name: z.string() });
