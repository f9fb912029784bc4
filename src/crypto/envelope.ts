/**
 * Envelope encryption below the root key: one random data key (DEK) per
 * workspace and key version, stored only wrapped by a root key, and secret
 * values encrypted under that DEK. Every ciphertext is bound by its AAD to the
 * row it belongs to, so a ciphertext copied to another secret, version, key
 * version or workspace fails to decrypt instead of yielding another value.
 *
 * Pure apart from the provider call; formats are described in README.md.
 */
import { randomBytes } from 'node:crypto';
import { CryptoError } from '../app/errors.js';
import { assertKeyLength, KEY_BYTES, open, seal } from './aes-gcm.js';
import type { RootKeyProvider, WrappedKey } from './root-keys.js';

/** Identifies one workspace data key: the AAD of its wrapping. */
export interface WorkspaceKeyContext {
  workspaceId: string;
  keyVersion: number;
}

/** Identifies the row a secret value belongs to: the AAD of its encryption. */
export interface SecretValueContext {
  workspaceId: string;
  secretId: string;
  version: number;
  keyVersion: number;
}

const WORKSPACE_KEY_LABEL = 'hush/workspace-key/v1';
const SECRET_VALUE_LABEL = 'hush/secret-value/v1';
const MAX_FIELD_BYTES = 0xffff;
const MAX_UINT32 = 0xffff_ffff;

const TAMPERED_MESSAGE =
  'secret value failed authentication: it was tampered with, moved, or encrypted under another key';

/**
 * Builds an AAD: the label, a 0x00 terminator, then each field in order —
 * strings as uint16 BE byte length + UTF-8, numbers as uint32 BE. Fixed field
 * order and explicit lengths make the encoding injective (no two contexts
 * share bytes); the label separates the two AAD kinds.
 */
function encodeAad(label: string, fields: ReadonlyArray<readonly [name: string, value: string | number]>): Buffer {
  // Sized first, then written into one buffer: on the path of every reveal and Send.
  let size = Buffer.byteLength(label, 'utf8') + 1;
  for (const [name, value] of fields) {
    if (typeof value === 'string') {
      const bytes = Buffer.byteLength(value, 'utf8');
      if (bytes > MAX_FIELD_BYTES) throw new RangeError(`${name} is longer than ${MAX_FIELD_BYTES} bytes`);
      size += 2 + bytes;
    } else {
      if (!Number.isInteger(value) || value < 0 || value > MAX_UINT32) {
        throw new RangeError(`${name} must be an integer from 0 to ${MAX_UINT32}`);
      }
      size += 4;
    }
  }
  const aad = Buffer.allocUnsafe(size);
  let at = aad.write(label, 0, 'utf8');
  aad[at++] = 0;
  for (const [, value] of fields) {
    if (typeof value === 'string') {
      const bytes = aad.write(value, at + 2, 'utf8');
      aad.writeUInt16BE(bytes, at);
      at += 2 + bytes;
    } else {
      at = aad.writeUInt32BE(value, at);
    }
  }
  return aad;
}

/** A new random 256-bit workspace data key. */
export function generateDataKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

/**
 * AAD of a wrapped workspace key:
 * "hush/workspace-key/v1" 0x00 | u16 len | workspaceId | u32 keyVersion.
 */
export function workspaceKeyAad(ctx: WorkspaceKeyContext): Buffer {
  return encodeAad(WORKSPACE_KEY_LABEL, [
    ['workspaceId', ctx.workspaceId],
    ['keyVersion', ctx.keyVersion],
  ]);
}

/**
 * AAD of a secret value:
 * "hush/secret-value/v1" 0x00 | u16 len | workspaceId | u16 len | secretId |
 * u32 version | u32 keyVersion.
 */
export function secretValueAad(ctx: SecretValueContext): Buffer {
  return encodeAad(SECRET_VALUE_LABEL, [
    ['workspaceId', ctx.workspaceId],
    ['secretId', ctx.secretId],
    ['version', ctx.version],
    ['keyVersion', ctx.keyVersion],
  ]);
}

/** Wraps a 32-byte DEK with the provider's active root key, bound to `ctx`. */
export async function wrapWorkspaceKey(
  provider: RootKeyProvider,
  dek: Buffer,
  ctx: WorkspaceKeyContext,
): Promise<WrappedKey> {
  assertKeyLength(dek, 'workspace data key');
  return provider.wrapKey(dek, workspaceKeyAad(ctx));
}

/**
 * Unwraps a DEK wrapped for exactly `ctx`. Throws CryptoError
 * 'root_key_unavailable' (root key id not loaded), 'root_key_mismatch'
 * (authentication failed: other key material, tampered, or moved to another
 * workspace/key version) or 'malformed_ciphertext'.
 */
export async function unwrapWorkspaceKey(
  provider: RootKeyProvider,
  wrapped: WrappedKey,
  ctx: WorkspaceKeyContext,
): Promise<Buffer> {
  const dek = await provider.unwrapKey(wrapped, workspaceKeyAad(ctx));
  if (dek.length !== KEY_BYTES) {
    dek.fill(0);
    throw new CryptoError(
      'malformed_ciphertext',
      `workspace key for key version ${ctx.keyVersion} unwrapped to ${dek.length} bytes, not ${KEY_BYTES}`,
    );
  }
  return dek;
}

/**
 * Encrypts a secret value under the workspace DEK with a fresh random IV,
 * bound to its row. Result: 0x01 || iv(12) || ciphertext || tag(16).
 * An empty value is allowed at this layer.
 */
export function encryptSecretValue(dek: Buffer, plaintext: Buffer | string, ctx: SecretValueContext): Buffer {
  assertKeyLength(dek, 'workspace data key');
  const aad = secretValueAad(ctx);
  if (typeof plaintext !== 'string') return seal(dek, plaintext, aad);
  const bytes = Buffer.from(plaintext, 'utf8');
  try {
    return seal(dek, bytes, aad);
  } finally {
    bytes.fill(0);
  }
}

/**
 * Decrypts a value blob for exactly the row `ctx`. Throws
 * CryptoError('decrypt_failed') when authentication fails (changed byte, other
 * row, other DEK) and CryptoError('malformed_ciphertext') for a blob too short
 * or of an unknown version. Never returns unauthenticated bytes.
 */
export function decryptSecretValue(dek: Buffer, blob: Buffer, ctx: SecretValueContext): Buffer {
  assertKeyLength(dek, 'workspace data key');
  const plain = open(dek, blob, secretValueAad(ctx), 'secret value');
  if (plain === undefined) throw new CryptoError('decrypt_failed', TAMPERED_MESSAGE);
  return plain;
}
