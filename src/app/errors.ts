/**
 * The one error hierarchy of Hush. Every failure a client may see is an
 * AppError with an HTTP status and a stable snake_case `code`; the error
 * handler plugin (error-handler.ts) turns it into application/problem+json.
 *
 * Messages are written for humans and must never contain a secret value,
 * a password, a token or any other user-supplied credential.
 */

export interface FieldError {
  /** JSON pointer-ish path of the offending field, e.g. "body.email". */
  path: string;
  message: string;
}

export class AppError extends Error {
  readonly status: number;
  readonly code: string;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { errors?: FieldError[]; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.errors = options.errors;
    this.headers = options.headers;
  }
}

export class ValidationError extends AppError {
  constructor(message: string, errors?: FieldError[]) {
    super(422, 'validation_failed', message, errors ? { errors } : {});
  }
}

export class UnauthenticatedError extends AppError {
  constructor(message = 'Sign in, or send a valid API token.') {
    super(401, 'unauthenticated', message);
  }
}

export class ForbiddenError extends AppError {
  constructor(message = 'Your role does not allow this action.', code = 'forbidden') {
    super(403, code, message);
  }
}

export class NotFoundError extends AppError {
  constructor(what = 'Resource') {
    super(404, 'not_found', `${what} not found.`);
  }
}

export class ConflictError extends AppError {
  constructor(code: string, message: string) {
    super(409, code, message);
  }
}

export class RateLimitedError extends AppError {
  constructor(retryAfterSeconds: number) {
    super(429, 'rate_limited', `Too many attempts. Try again in ${retryAfterSeconds} s.`, {
      headers: { 'retry-after': String(retryAfterSeconds) },
    });
  }
}

/**
 * A failure of the encryption layer. Its message names keys and ids, never
 * key material or plaintext.
 */
export class CryptoError extends AppError {
  constructor(
    code:
      | 'decrypt_failed'
      | 'malformed_ciphertext'
      | 'root_key_unavailable'
      | 'root_key_mismatch'
      | 'key_config_invalid',
    message: string,
  ) {
    super(500, code, message);
  }
}
