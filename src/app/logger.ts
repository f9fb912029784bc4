/**
 * The pino logger. Request and response objects are logged through narrow
 * serializers (method, url without query, status) so a body, a cookie or a
 * header can never reach a log line; `redact` is the second belt.
 */
import pino, { type Logger, type LoggerOptions } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-hush-csrf"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.value',
  '*.token',
  '*.plaintext',
  '*.secret',
];

/** The URL path only: query strings may carry tokens a user pasted there. */
export function pathOnly(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : `${url.slice(0, q)}?…`;
}

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    base: { service: 'hush' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: {
      req: (req: { method?: string; url?: string; id?: string }) => ({ method: req.method, url: pathOnly(req.url) }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      err: pino.stdSerializers.err,
    },
  };
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return destination ? pino(loggerOptions(level), destination) : pino(loggerOptions(level));
}
