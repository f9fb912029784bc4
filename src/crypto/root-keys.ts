/**
 * Root keys (KEKs): 256-bit keys that wrap workspace data keys and nothing
 * else. A RootKeyProvider holds one or more of them, each named by an id, so a
 * root key can be rotated while data wrapped under the old one stays readable.
 *
 * Providers here: `file` (a JSON key file, created 0600 on first start), `env`
 * (HUSH_MASTER_KEY), and any in-process key list. memory-kms.ts shows how a
 * cloud KMS plugs in. Key material never leaves a provider except as a
 * WrappedKey's ciphertext, and never appears in an error message.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { CryptoError } from '../app/errors.js';
import { KEY_BYTES, open, seal } from './aes-gcm.js';

/** A key encrypted under a root key, together with that root key's id. */
export interface WrappedKey {
  rootKeyId: string;
  /** 0x01 || iv(12) || GCM ciphertext || tag(16); see README.md. */
  ciphertext: Buffer;
}

/**
 * Where root keys live. This is the extension point for a cloud KMS: wrap and
 * unwrap may be remote calls, hence async. Implementations must never expose
 * key material and must reject (not garble) anything that fails to authenticate.
 */
export interface RootKeyProvider {
  /** 'file' | 'env' | 'memory-kms' | … — for logs and `doctor`. */
  readonly kind: string;
  /** The id new wraps are made under. */
  activeKeyId(): string;
  /** Every id this provider can unwrap with, active one included. */
  keyIds(): string[];
  hasKey(keyId: string): boolean;
  /** Wraps `plain` with the active root key, authenticating `aad`. */
  wrapKey(plain: Buffer, aad: Buffer): Promise<WrappedKey>;
  /** Unwraps with `wrapped.rootKeyId`; `aad` must equal the one given to wrapKey. */
  unwrapKey(wrapped: WrappedKey, aad: Buffer): Promise<Buffer>;
}

const ROOT_KEY_ID_LABEL = Buffer.from('hush root key id v1\0', 'utf8');
const ROOT_KEY_ID_PATTERN = /^rk_[0-9a-f]{16}$/;
const KEY_FILE_VERSION = 1;
const ENV_VAR = 'HUSH_MASTER_KEY';

/**
 * The id of a root key: "rk_" + the first 16 hex digits of
 * sha256("hush root key id v1\0" || key). Derived, so an id always names the
 * same key material; the label keeps it from equalling any other hash of the key.
 */
export function rootKeyId(key: Buffer): string {
  const digest = createHash('sha256').update(ROOT_KEY_ID_LABEL).update(key).digest('hex');
  return `rk_${digest.slice(0, 16)}`;
}

/** A new random 256-bit root key. */
export function generateRootKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

/** Unwrap errors shared by every provider that wraps with the common sealed format. */
export function rootKeyUnavailable(keyId: string): CryptoError {
  return new CryptoError('root_key_unavailable', `root key ${keyId} is not loaded; was the master key changed?`);
}

/** @see rootKeyUnavailable */
export function rootKeyMismatch(keyId: string): CryptoError {
  return new CryptoError(
    'root_key_mismatch',
    `wrapped key failed authentication under root key ${keyId}: the key material differs from the one that wrapped it, or the wrapped key was tampered with or moved`,
  );
}

/**
 * Wraps in-process with AES-256-GCM. Keys sit in a private field, so they do
 * not show up in console.log, util.inspect or JSON.stringify of the provider.
 */
class LocalKeyProvider implements RootKeyProvider {
  readonly kind: string;
  readonly #keys: Map<string, Buffer>;
  readonly #activeId: string;

  constructor(kind: string, keys: Map<string, Buffer>, activeId: string) {
    this.kind = kind;
    this.#keys = keys;
    this.#activeId = activeId;
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
    const plain = open(key, wrapped.ciphertext, aad, `wrapped key under root key ${wrapped.rootKeyId}`);
    if (plain === undefined) throw rootKeyMismatch(wrapped.rootKeyId);
    return plain;
  }
}

/**
 * A provider that wraps in-process with the given 32-byte keys (copied).
 * The first key is active unless `activeId` names another. Duplicate keys are
 * kept once. Throws CryptoError('key_config_invalid') for no keys, a key of
 * the wrong length, or an `activeId` that is not among them.
 */
export function createLocalKeyProvider(kind: string, keys: Buffer[], activeId?: string): RootKeyProvider {
  if (keys.length === 0) {
    throw new CryptoError('key_config_invalid', `${kind} key provider needs at least one root key`);
  }
  const byId = new Map<string, Buffer>();
  keys.forEach((key, index) => {
    if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
      throw new CryptoError(
        'key_config_invalid',
        `${kind} key provider: root key ${index + 1} is not ${KEY_BYTES} bytes`,
      );
    }
    const id = rootKeyId(key);
    if (!byId.has(id)) byId.set(id, Buffer.from(key));
  });
  const active = activeId ?? rootKeyId(keys[0] as Buffer);
  if (!byId.has(active)) {
    throw new CryptoError(
      'key_config_invalid',
      `${kind} key provider: active root key ${active} is not among its keys`,
    );
  }
  return new LocalKeyProvider(kind, byId, active);
}

/**
 * Decodes one base64 key (standard or URL alphabet, padding optional) or
 * returns a reason it is not one. Node's decoder silently skips bad
 * characters, so the alphabet is checked first.
 */
function decodeBase64Key(text: string): Buffer | string {
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) return 'is not base64';
  const key = Buffer.from(text, 'base64');
  if (key.length !== KEY_BYTES) {
    return `decodes to ${key.length} bytes; a root key is ${KEY_BYTES} bytes (44 base64 characters, e.g. from \`openssl rand -base64 32\`)`;
  }
  return key;
}

/**
 * Parses HUSH_MASTER_KEY: one or more base64 (standard or URL-safe) 32-byte
 * keys separated by commas; the first is active, the rest stay available for
 * unwrapping (root key rotation). Throws CryptoError('key_config_invalid') with
 * a message that names the variable and the entry, never the value.
 */
export function parseEnvMasterKey(value: string): RootKeyProvider {
  const entries = value.split(',').map((entry) => entry.trim());
  if (entries.every((entry) => entry === '')) {
    throw new CryptoError('key_config_invalid', `${ENV_VAR} is empty; set it to a base64 32-byte key`);
  }
  const keys: Buffer[] = [];
  const seen = new Map<string, number>();
  entries.forEach((entry, index) => {
    const where = entries.length === 1 ? ENV_VAR : `${ENV_VAR} entry ${index + 1} of ${entries.length}`;
    if (entry === '') throw new CryptoError('key_config_invalid', `${where} is empty (stray comma?)`);
    const key = decodeBase64Key(entry);
    if (typeof key === 'string') throw new CryptoError('key_config_invalid', `${where} ${key}`);
    const id = rootKeyId(key);
    const earlier = seen.get(id);
    if (earlier !== undefined) {
      throw new CryptoError('key_config_invalid', `${where} repeats entry ${earlier + 1}`);
    }
    seen.set(id, index);
    keys.push(key);
  });
  return createLocalKeyProvider('env', keys);
}

interface KeyFileEntry {
  id: string;
  key: string;
  createdAt: string;
}

interface KeyFile {
  version: 1;
  active: string;
  keys: KeyFileEntry[];
}

function invalidKeyFile(file: string, problem: string): CryptoError {
  return new CryptoError('key_config_invalid', `master key file ${file} ${problem}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Validates the parsed key file; returns the keys in file order and the active id. */
function validateKeyFile(file: string, data: unknown): { doc: KeyFile; keys: Buffer[] } {
  if (!isRecord(data)) throw invalidKeyFile(file, 'is not a JSON object');
  if (data.version !== KEY_FILE_VERSION) {
    throw invalidKeyFile(file, `has version ${String(data.version)}; this build reads version ${KEY_FILE_VERSION}`);
  }
  if (!Array.isArray(data.keys) || data.keys.length === 0) throw invalidKeyFile(file, 'lists no keys');
  if (typeof data.active !== 'string') throw invalidKeyFile(file, 'has no "active" key id');
  const entries: KeyFileEntry[] = [];
  const keys: Buffer[] = [];
  const ids = new Set<string>();
  data.keys.forEach((entry: unknown, index: number) => {
    const where = `key ${index + 1}`;
    if (!isRecord(entry)) throw invalidKeyFile(file, `${where} is not an object`);
    const { id, key, createdAt } = entry;
    if (typeof id !== 'string' || !ROOT_KEY_ID_PATTERN.test(id)) {
      throw invalidKeyFile(file, `${where} has no valid "id" (rk_ and 16 hex digits)`);
    }
    if (typeof key !== 'string') throw invalidKeyFile(file, `${where} (${id}) has no "key"`);
    const material = decodeBase64Key(key);
    if (typeof material === 'string') throw invalidKeyFile(file, `${where} (${id}) ${material}`);
    if (rootKeyId(material) !== id) {
      throw invalidKeyFile(file, `${where}: id ${id} does not match its key material (edited or corrupted?)`);
    }
    if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt))) {
      throw invalidKeyFile(file, `${where} (${id}) has no valid "createdAt" timestamp`);
    }
    if (ids.has(id)) throw invalidKeyFile(file, `lists ${id} twice`);
    ids.add(id);
    entries.push({ id, key, createdAt });
    keys.push(material);
  });
  if (!ids.has(data.active)) throw invalidKeyFile(file, `names active key ${data.active}, which it does not contain`);
  return { doc: { version: KEY_FILE_VERSION, active: data.active, keys: entries }, keys };
}

/** Reads and validates the key file; `undefined` when it does not exist. */
function readKeyFile(file: string): { doc: KeyFile; keys: Buffer[] } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw invalidKeyFile(file, `cannot be read (${code ?? 'unknown error'})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw invalidKeyFile(file, 'is not valid JSON');
  }
  return validateKeyFile(file, data);
}

function newKeyEntry(key: Buffer): KeyFileEntry {
  return { id: rootKeyId(key), key: key.toString('base64'), createdAt: new Date().toISOString() };
}

/** Writes `doc` to a fresh 0600 temporary file beside `file`, flushed to disk; returns its path. */
function writeTempKeyFile(file: string, doc: KeyFile): string {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(doc, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // The mode given to open is filtered by the umask; 0600 must hold regardless.
  chmodSync(temp, 0o600);
  return temp;
}

/** Makes a rename or link durable; best effort, as not every platform can fsync a directory. */
function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Directory fsync is unsupported on some platforms; the file itself is synced.
  }
}

/**
 * Publishes a new key file without ever replacing one that appeared meanwhile
 * (two processes starting at once must not each mint a different key).
 * Returns false when another file won.
 */
function publishNewKeyFile(file: string, doc: KeyFile): boolean {
  const temp = writeTempKeyFile(file, doc);
  try {
    linkSync(temp, file);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
      // No hard links on this file system: fall back to a plain atomic rename.
      renameSync(temp, file);
      return true;
    }
    throw error;
  } finally {
    try {
      unlinkSync(temp);
    } catch {
      // Already renamed into place.
    }
    syncDirectory(path.dirname(file));
  }
}

/**
 * Opens the root key file, creating it (with its parent directory, mode 0600
 * and one new key) when missing; `created` tells the caller to warn that the
 * file must be backed up. File format:
 *
 *   {"version":1,"active":"rk_…","keys":[{"id":"rk_…","key":"<base64>","createdAt":"ISO"}]}
 *
 * Throws CryptoError('key_config_invalid') when the file is unreadable, not
 * this format, an id does not match its key, or the active id is missing.
 */
export function openFileKeyProvider(file: string): { provider: RootKeyProvider; created: boolean } {
  const existing = readKeyFile(file);
  if (existing !== undefined) {
    return { provider: createLocalKeyProvider('file', existing.keys, existing.doc.active), created: false };
  }
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const key = generateRootKey();
  const entry = newKeyEntry(key);
  const created = publishNewKeyFile(file, { version: KEY_FILE_VERSION, active: entry.id, keys: [entry] });
  if (!created) {
    const winner = readKeyFile(file);
    if (winner === undefined) throw invalidKeyFile(file, 'vanished while being created');
    return { provider: createLocalKeyProvider('file', winner.keys, winner.doc.active), created: false };
  }
  return { provider: createLocalKeyProvider('file', [key]), created: true };
}

/**
 * Opens an existing root key file, never creating one: `undefined` when it
 * does not exist. Throws as openFileKeyProvider does for a file it cannot use.
 */
export function readFileKeyProvider(file: string): RootKeyProvider | undefined {
  const existing = readKeyFile(file);
  return existing && createLocalKeyProvider('file', existing.keys, existing.doc.active);
}

/** True when the key file is readable or writable by group or others (POSIX only). */
export function keyFilePermissionsTooOpen(file: string): boolean {
  if (process.platform === 'win32') return false;
  return (statSync(file).mode & 0o077) !== 0;
}

/**
 * Appends a newly generated root key to an existing key file and returns its
 * id; with `makeActive` new wraps use it from the next open. Old keys stay,
 * so everything wrapped under them still unwraps. Rewrites atomically (temp
 * file + rename) at mode 0600. Not safe against a concurrent writer: run it
 * from one place (the CLI), then restart or reopen the provider.
 */
export function addRootKeyToFile(file: string, makeActive: boolean): string {
  const existing = readKeyFile(file);
  if (existing === undefined) throw invalidKeyFile(file, 'does not exist; start Hush once to create it');
  const entry = newKeyEntry(generateRootKey());
  const doc: KeyFile = {
    version: KEY_FILE_VERSION,
    active: makeActive ? entry.id : existing.doc.active,
    keys: [...existing.doc.keys, entry],
  };
  const temp = writeTempKeyFile(file, doc);
  try {
    renameSync(temp, file);
  } catch (error) {
    unlinkSync(temp);
    throw error;
  }
  syncDirectory(path.dirname(file));
  return entry.id;
}

/**
 * Removes retired root keys from a key file (never the active one) and
 * returns the ids removed. Call only when nothing is wrapped under them any
 * more. Same atomic rewrite and single-writer rule as addRootKeyToFile.
 */
export function retireRootKeysInFile(file: string, ids: readonly string[]): string[] {
  const existing = readKeyFile(file);
  if (existing === undefined) throw invalidKeyFile(file, 'does not exist');
  const drop = new Set(ids.filter((id) => id !== existing.doc.active));
  const removed = existing.doc.keys.filter((k) => drop.has(k.id)).map((k) => k.id);
  if (removed.length === 0) return [];
  const doc: KeyFile = { ...existing.doc, keys: existing.doc.keys.filter((k) => !drop.has(k.id)) };
  const temp = writeTempKeyFile(file, doc);
  try {
    renameSync(temp, file);
  } catch (error) {
    unlinkSync(temp);
    throw error;
  }
  syncDirectory(path.dirname(file));
  return removed;
}
