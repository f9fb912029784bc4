/**
 * An in-process stand-in for a cloud KMS (AWS KMS, GCP KMS, Vault Transit…),
 * implementing RootKeyProvider. It exists to prove — and test — that the
 * provider interface admits a KMS: key material never leaves the "service",
 * ids are the service's own ("kms_…", not derived from the key), wrap/unwrap
 * are async calls, and rotate() adds a new primary version while old ones keep
 * decrypting.
 *
 * A real adapter has the same shape: activeKeyId() returns the configured key
 * (or key version) ARN/name, wrapKey calls Encrypt with `aad` as the
 * encryption context / additional data, unwrapKey calls Decrypt, and remote
 * errors map to CryptoError 'root_key_unavailable' (key unknown, disabled or
 * unreachable) or 'root_key_mismatch' (authentication failed).
 */
import { randomBytes } from 'node:crypto';
import { open, seal } from './aes-gcm.js';
import type { RootKeyProvider, WrappedKey } from './root-keys.js';
import { generateRootKey, rootKeyMismatch, rootKeyUnavailable } from './root-keys.js';

/** A RootKeyProvider whose keys live in a simulated remote KMS. */
export class MemoryKms implements RootKeyProvider {
  readonly kind = 'memory-kms';
  readonly #keys = new Map<string, Buffer>();
  #activeId: string;

  constructor() {
    this.#activeId = this.#createKey();
  }

  #createKey(): string {
    const id = `kms_${randomBytes(8).toString('hex')}`;
    this.#keys.set(id, generateRootKey());
    return id;
  }

  /** Adds a new key and makes it active; returns its id. Older keys still unwrap. */
  rotate(): string {
    this.#activeId = this.#createKey();
    return this.#activeId;
  }

  activeKeyId(): string {
    return this.#activeId;
  }

  keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  hasKey(keyId: string): boolean {
    return this.#keys.has(keyId);
  }

  async wrapKey(plain: Buffer, aad: Buffer): Promise<WrappedKey> {
    const key = this.#keys.get(this.#activeId) as Buffer;
    return { rootKeyId: this.#activeId, ciphertext: seal(key, plain, aad) };
  }

  async unwrapKey(wrapped: WrappedKey, aad: Buffer): Promise<Buffer> {
    const key = this.#keys.get(wrapped.rootKeyId);
    if (key === undefined) throw rootKeyUnavailable(wrapped.rootKeyId);
    const plain = open(key, wrapped.ciphertext, aad, `wrapped key under KMS key ${wrapped.rootKeyId}`);
    if (plain === undefined) throw rootKeyMismatch(wrapped.rootKeyId);
    return plain;
  }
}

/** A fresh in-memory KMS with one active key. */
export function createMemoryKms(): MemoryKms {
  return new MemoryKms();
}
