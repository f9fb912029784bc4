/**
 * The OpenAPI document as the server really answers: the schemas come from
 * the routes' zod schemas (fastify-type-provider-zod), which know nothing of
 * content types or headers. Here, once per document: error responses are
 * `application/problem+json`; an operation with path parameters can answer
 * 422 (a malformed id) even where its route does not list it; one with a
 * body, the body parser's 400/413/415; the rate-limited ones 429 and 503;
 * public ones need no credentials; the audit CSV is text/csv; a secret's
 * GET and PATCH, and a workflow's GET, POST and PUT, carry its ETag. Every
 * operation, public ones too, can answer 401 (a bearer token that is
 * malformed, revoked or expired is refused before the route runs), and every
 * one that changes state 403 `csrf_failed` (a session cookie without
 * X-Hush-Csrf) — modules/auth/authenticate.ts.
 */
type Json = Record<string, unknown>;
type Operation = {
  parameters?: { in?: string }[];
  requestBody?: unknown;
  responses?: Record<string, Json>;
  security?: unknown[];
};

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;
type Method = (typeof METHODS)[number];
/** Operations that answer without a session or token. */
const PUBLIC: Record<string, Method[]> = {
  '/api/v1/setup': ['get', 'post'],
  '/api/v1/auth/login': ['post'],
  '/api/v1/auth/logout': ['post'],
  '/api/v1/invitations/accept': ['post'],
};
/** Operations behind a rate limit: 429 past it, 503 while its store (Redis) does not answer. */
const RATE_LIMITED: Record<string, Method[]> = {
  '/api/v1/auth/login': ['post'],
  '/api/v1/invitations/accept': ['post'],
  '/api/v1/workspaces/{ws}/secrets/{id}/reveal': ['post'],
};
/** What the body parser answers for any operation that takes a body, before its route runs. */
const BODY_PROBLEMS: Record<string, string> = {
  '400': 'The body is not valid JSON (malformed_json)',
  '413': 'The body is larger than 2 MiB (payload_too_large)',
  '415': 'The body is not application/json (unsupported_media_type)',
};
/** Methods that need no X-Hush-Csrf with a session cookie (authenticate.ts). */
const SAFE_METHODS: ReadonlySet<Method> = new Set(['get', 'head', 'options']);
/** Operations answering CSV rather than JSON. */
const CSV = new Set(['/api/v1/workspaces/{ws}/audit.csv']);
/** Operations whose success answer carries an ETag: path → method → what the tag is. */
const ETAGS: Record<string, Partial<Record<(typeof METHODS)[number], string>>> = {
  '/api/v1/workspaces/{ws}/secrets': {
    post: 'The secret\'s "<version>.<revision>": send it back as If-Match',
  },
  '/api/v1/workspaces/{ws}/secrets/{id}/restore': {
    post: 'The secret\'s "<version>.<revision>": send it back as If-Match',
  },
  '/api/v1/workspaces/{ws}/secrets/{id}': {
    get: 'The secret\'s "<version>.<revision>": send it back as If-Match',
    patch: 'The secret\'s "<version>.<revision>": send it back as If-Match',
  },
  '/api/v1/workspaces/{ws}/workflows': {
    post: 'The workflow\'s "<revision>": send it back as If-Match',
  },
  '/api/v1/workspaces/{ws}/workflows/{id}': {
    get: 'The workflow\'s "<revision>": send it back as If-Match',
    put: 'The workflow\'s "<revision>": send it back as If-Match',
  },
};

/** Creations whose 201 names the new resource in `Location` (RFC 9110 §15.3.2). */
const LOCATIONS: Record<string, string> = {
  '/api/v1/workspaces': 'The new workspace: /api/v1/workspaces/{id}',
  '/api/v1/workspaces/{ws}/secrets': 'The new secret: /api/v1/workspaces/{ws}/secrets/{id}',
  '/api/v1/workspaces/{ws}/variables': 'The new variable: /api/v1/workspaces/{ws}/variables/{id}',
  '/api/v1/workspaces/{ws}/workflows': 'The new workflow: /api/v1/workspaces/{ws}/workflows/{id}',
  '/api/v1/workspaces/{ws}/workflows/{id}/runs': 'The run: /api/v1/workspaces/{ws}/runs/{runId}',
};

export function refineOpenApi<T extends object>(document: T): T {
  const doc = document as { paths?: Record<string, Record<string, unknown>> };
  let problem: Json | undefined;
  for (const item of Object.values(doc.paths ?? {}))
    for (const method of METHODS) {
      const responses = (item[method] as Operation | undefined)?.responses ?? {};
      for (const [status, response] of Object.entries(responses)) {
        const content = response.content as Record<string, Json> | undefined;
        if (Number(status) < 400 || !content?.['application/json']) continue;
        problem ??= content['application/json'];
        response.content = { 'application/problem+json': content['application/json'] };
      }
    }
  const declare = (op: Operation & { responses: Record<string, Json> }, status: string, description: string) => {
    if (problem && !op.responses[status])
      op.responses[status] = { description, content: { 'application/problem+json': problem } };
  };
  for (const [route, item] of Object.entries(doc.paths ?? {}))
    for (const method of METHODS) {
      const op = item[method] as Operation | undefined;
      if (!op?.responses) continue;
      const withResponses = op as Operation & { responses: Record<string, Json> };
      if (op.parameters?.some((p) => p.in === 'path'))
        declare(withResponses, '422', 'A malformed path parameter or request');
      if (op.requestBody)
        for (const [status, description] of Object.entries(BODY_PROBLEMS)) declare(withResponses, status, description);
      if (PUBLIC[route]?.includes(method)) op.security = [];
      if (RATE_LIMITED[route]?.includes(method)) {
        declare(withResponses, '429', 'Too many attempts: wait for Retry-After (rate_limited)');
        declare(
          withResponses,
          '503',
          'The rate-limit store does not answer: retry after Retry-After (rate_limit_unavailable)',
        );
      }
      if (CSV.has(route) && method === 'get') {
        op.responses['200'] = {
          description: 'The events as CSV (RFC 4180, CRLF), oldest first',
          content: { 'text/csv': { schema: { type: 'string' } } },
        };
        declare(withResponses, '401', 'No session or token');
        declare(withResponses, '403', 'The role lacks audit.read');
        declare(withResponses, '404', 'No such workspace');
      }
      // Refused in the authentication hook, before any route: so on every operation, public ones too.
      declare(withResponses, '401', 'A bearer token that is malformed, revoked or expired (unauthenticated)');
      if (!SAFE_METHODS.has(method))
        declare(
          withResponses,
          '403',
          'With the session cookie, X-Hush-Csrf is missing or is not the hush_csrf cookie (csrf_failed)',
        );
      const etag = ETAGS[route]?.[method];
      const success = op.responses['200'] ?? op.responses['201'];
      if (etag && success) success.headers = { ETag: { description: etag, schema: { type: 'string' } } };
      const created = op.responses['201'];
      const location = method === 'post' ? LOCATIONS[route] : undefined;
      if (location && created)
        created.headers = {
          ...(created.headers as Json),
          Location: { description: location, schema: { type: 'string' } },
        };
    }
  return document;
}
