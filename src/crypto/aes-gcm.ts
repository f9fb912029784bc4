/**
 * AES-256-GCM sealing shared by every Hush ciphertext (wrapped keys and secret
 * values), so there is exactly one byte format to get right:
 *
 *   offset 0       1 byte   format version, 0x01
 *   offset 1       12 bytes IV (random per encryption)
 *   offset 13      n bytes  GCM ciphertext (n = plaintext length)
 *   offset 13 + n  16 bytes GCM tag
 *
 * Internal to src/crypto: callers use root-keys.ts and envelope.ts.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CryptoError } from '../app/errors.js';

export const FORMAT_VERSION = 0x01;
export const KEY_BYTES = 32;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
/** Version byte plus IV. */
export const HEADER_BYTES = 1 + IV_BYTES;
/** The sealing of an empty plaintext. */
export const MIN_SEALED_BYTES = HEADER_BYTES + TAG_BYTES;

const ALGORITHM = 'aes-256-gcm';

/** Throws a RangeError (a programming error, not a data error) unless `key` is a 32-byte Buffer. */
export function assertKeyLength(key: Buffer, what: string): void {
  if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
    throw new RangeError(`${what} must be a ${KEY_BYTES}-byte Buffer`);
  }
}

/** Encrypts `plaintext` under `key` with a fresh random IV, authenticating `aad`. */
export function seal(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.of(FORMAT_VERSION), iv, body, cipher.getAuthTag()]);
}

/**
 * Decrypts a sealed buffer. Throws CryptoError('malformed_ciphertext') when the
 * framing is wrong (too short, unknown version); returns `undefined` when
 * authentication fails, so the caller chooses the error that explains it.
 * Never returns unauthenticated bytes.
 */
export function open(key: Buffer, sealed: Buffer, aad: Buffer, what: string): Buffer | undefined {
  if (!Buffer.isBuffer(sealed) || sealed.length < MIN_SEALED_BYTES) {
    const length = Buffer.isBuffer(sealed) ? sealed.length : 0;
    throw new CryptoError(
      'malformed_ciphertext',
      `${what} is ${length} bytes; at least ${MIN_SEALED_BYTES} are required (version, IV, tag)`,
    );
  }
  if (sealed[0] !== FORMAT_VERSION) {
    throw new CryptoError(
      'malformed_ciphertext',
      `${what} has format version ${sealed[0]}; this build reads version ${FORMAT_VERSION}`,
    );
  }
  const iv = sealed.subarray(1, HEADER_BYTES);
  const body = sealed.subarray(HEADER_BYTES, sealed.length - TAG_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const decipher = createDecipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const head = decipher.update(body);
  try {
    const tail = decipher.final();
    // GCM is a stream mode: final() adds nothing, and `head` is the whole plaintext (no second copy).
    if (tail.length === 0) return head;
    const whole = Buffer.concat([head, tail]);
    head.fill(0);
    return whole;
  } catch {
    // `head` is unauthenticated output; wipe it rather than let it linger.
    head.fill(0);
    return undefined;
  }
}
