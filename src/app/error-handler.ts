/**
 * Maps every error to application/problem+json in exactly one place:
 * AppError → its status and code; schema failures → 422 validation_failed;
 * Fastify's own client errors → their 4xx with a code; anything else → a
 * generic 500 carrying the request id, logged without payloads.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { isDatabaseBusy, isDatabaseUnavailable } from '../db/database.js';
import { AppError, type FieldError } from './errors.js';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  errors?: FieldError[];
  requestId?: string;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Fastify's own error codes for bad client input, with our stable codes. */
const FASTIFY_CLIENT_ERRORS: Record<string, { status: number; code: string; detail: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'malformed_json', detail: 'The request body is not valid JSON.' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'malformed_json', detail: 'The JSON request body is empty.' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'payload_too_large', detail: 'The request body is too large.' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'unsupported_media_type',
    detail: 'Send the request body as application/json.',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    code: 'bad_request',
    detail: 'The Content-Length header does not match the body.',
  },
  FST_ERR_CTP_INVALID_TYPE: { status: 400, code: 'bad_request', detail: 'The Content-Type header is invalid.' },
  FST_ERR_BAD_URL: { status: 400, code: 'bad_request', detail: 'The URL is malformed.' },
  FST_ERR_ASYNC_CONSTRAINT: { status: 400, code: 'bad_request', detail: 'The request is malformed.' },
};

export function problem(status: number, code: string, detail: string, extra: Partial<Problem> = {}): Problem {
  return {
    type: `https://hush.dev/problems/${code.replaceAll('_', '-')}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    code,
    ...extra,
  };
}

export function sendProblem(reply: FastifyReply, body: Problem): FastifyReply {
  return reply.code(body.status).type('application/problem+json; charset=utf-8').send(body);
}

/** Where a field error points: `body`, `params`, `headers`, or `query` (Fastify says `querystring`). */
const CONTEXT_NAMES: Record<string, string> = { querystring: 'query' };

function fieldErrorsFromZod(error: FastifyError): FieldError[] {
  const raw = (error as { validationContext?: string }).validationContext ?? 'body';
  const context = CONTEXT_NAMES[raw] ?? raw;
  return (error.validation ?? []).map((v) => {
    const pointer = (v.instancePath ?? '').split('/').filter(Boolean);
    const params = v.params as { issue?: { message?: string } } | undefined;
    return { path: [context, ...pointer].join('.'), message: params?.issue?.message ?? v.message ?? 'is invalid' };
  });
}

/** Database conditions that pass by themselves: 503 with `Retry-After`, never a 500. */
const TRANSIENT_DATABASE = [
  {
    // Unreachable, gone, or not answering in time (PostgreSQL).
    is: isDatabaseUnavailable,
    code: 'database_unavailable',
    log: 'database unavailable',
    detail: 'The database is not available right now; try again shortly.',
  },
  {
    // SQLite's write lock held by another process past the busy timeout: nothing was
    // written, and it passes when that process commits.
    is: isDatabaseBusy,
    code: 'database_busy',
    log: 'database busy',
    detail: 'The database is busy with another process; try again shortly.',
  },
];

export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof AppError) {
      if (error.headers) reply.headers(error.headers);
      if (error.status >= 500) request.log.error({ code: error.code, errName: error.name }, error.message);
      else request.log.debug({ code: error.code, status: error.status }, 'request refused');
      return sendProblem(
        reply,
        problem(error.status, error.code, error.message, {
          ...(error.errors ? { errors: error.errors } : {}),
          ...(error.status >= 500 ? { requestId: request.id } : {}),
        }),
      );
    }
    if (hasZodFastifySchemaValidationErrors(error) || error.validation) {
      const errors = fieldErrorsFromZod(error);
      request.log.debug({ code: 'validation_failed', paths: errors.map((e) => e.path) }, 'request refused');
      const first = errors[0];
      const detail = first ? `${first.path}: ${first.message}` : 'The request is invalid.';
      return sendProblem(reply, problem(422, 'validation_failed', detail, { errors }));
    }
    const known = error.code ? FASTIFY_CLIENT_ERRORS[error.code] : undefined;
    if (known) return sendProblem(reply, problem(known.status, known.code, known.detail));
    if (error.statusCode === 429) {
      return sendProblem(reply, problem(429, 'rate_limited', 'Too many requests. Try again later.'));
    }
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      return sendProblem(reply, problem(error.statusCode, 'bad_request', 'The request is malformed.'));
    }
    const transient = TRANSIENT_DATABASE.find((t) => t.is(error));
    if (transient) {
      // Passes by itself: the client may retry. Logged by kind and code, never the message
      // (a driver's may name the host, the database file or a parameter).
      request.log.warn({ errName: error.name, errCode: error.code }, transient.log);
      return sendProblem(
        reply.header('retry-after', '5'),
        problem(503, transient.code, transient.detail, { requestId: request.id }),
      );
    }
    // Unknown: log the kind and the stack frames, never the message (it may quote
    // data, e.g. a driver echoing a parameter) nor the request body.
    request.log.error(
      {
        errName: error.name,
        errCode: error.code,
        frames: error.stack?.split('\n').slice(1, 12).join('\n'),
        serialization: isResponseSerializationError(error),
      },
      'unhandled error',
    );
    return sendProblem(
      reply,
      problem(500, 'internal_error', 'Something went wrong on our side. Quote the request id when reporting it.', {
        requestId: request.id,
      }),
    );
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, problem(404, 'not_found', `No route for ${request.method} ${request.url.split('?')[0]}.`)),
  );
}
