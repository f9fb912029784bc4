import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from './database.js';

/** What pg throws for a statement PostgreSQL refused: an Error with the SQLSTATE and a severity. */
const refused = (code: string) => Object.assign(new Error(`refused (${code})`), { code, severity: 'ERROR' });

describe('isDatabaseUnavailable', () => {
  it('reads an outage into the connection, shutdown, overload and timeout SQLSTATEs', () => {
    for (const code of ['08006', '08001', '08003', '57P01', '57P02', '57P03', '53300', '57014', '55P03']) {
      expect(isDatabaseUnavailable(refused(code)), code).toBe(true);
    }
  });

  it('leaves a protocol violation (08P01), constraint and syntax errors to be bugs or bad input, not outages', () => {
    for (const code of ['08P01', '23505', '23503', '42601', '22P02', '40001']) {
      expect(isDatabaseUnavailable(refused(code)), code).toBe(false);
    }
  });
});
