/**
 * The OpenAPI document as the server really answers: the schemas come from
 * the routes' zod schemas (fastify-type-provider-zod), which know nothing of
 * content types or headers. Here, once per document: error responses are
 * `application/problem+json`; an operation with path parameters can answer
 * 422 (a malformed id) even where its route does not list it; a secret's
 * GET and PATCH, and a workflow's GET, POST and PUT, carry its ETag.
 */
type Json = Record<string, unknown>;
type Operation = { parameters?: { in?: string }[]; responses?: Record<string, Json> };

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;
/** Operations whose success answer carries an ETag: path → method → what the tag is. */
const ETAGS: Record<string, Partial<Record<(typeof METHODS)[number], string>>> = {
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
  for (const [route, item] of Object.entries(doc.paths ?? {}))
    for (const method of METHODS) {
      const op = item[method] as Operation | undefined;
      if (!op?.responses) continue;
      if (problem && !op.responses['422'] && op.parameters?.some((p) => p.in === 'path'))
        op.responses['422'] = {
          description: 'A malformed path parameter or request',
          content: { 'application/problem+json': problem },
        };
      const etag = ETAGS[route]?.[method];
      const success = op.responses['200'] ?? op.responses['201'];
      if (etag && success) success.headers = { ETag: { description: etag, schema: { type: 'string' } } };
    }
  return document;
}
