import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CryptoError } from '../app/errors.js';
import { createMemoryKms } from './memory-kms.js';
import {
  addRootKeyToFile,
  createLocalKeyProvider,
  generateRootKey,
  keyFilePermissionsTooOpen,
  openFileKeyProvider,
  parseEnvMasterKey,
  type RootKeyProvider,
  rootKeyId,
} from './root-keys.js';

const aad = Buffer.from('test aad');
const isPosix = process.platform !== 'win32';

function cryptoFailure(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CryptoError);
    const { code, message } = error as CryptoError;
    return { code, message };
  }
  throw new Error('expected a CryptoError, but the call returned');
}

async function cryptoFailureAsync(fn: () => Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CryptoError);
    const { code, message } = error as CryptoError;
    return { code, message };
  }
  throw new Error('expected a CryptoError, but the call resolved');
}

async function expectRoundTrip(provider: RootKeyProvider): Promise<void> {
  const plain = generateRootKey();
  const wrapped = await provider.wrapKey(plain, aad);
  expect((await provider.unwrapKey(wrapped, aad)).equals(plain)).toBe(true);
}

describe('root key ids', () => {
  it('derives the id as rk_ plus 16 hex digits of a labelled SHA-256 of the key', () => {
    const key = Buffer.alloc(32, 7);
    const digest = createHash('sha256')
      .update(Buffer.concat([Buffer.from('hush root key id v1\0'), key]))
      .digest('hex');
    expect(rootKeyId(key)).toBe(`rk_${digest.slice(0, 16)}`);
    expect(rootKeyId(key)).toMatch(/^rk_[0-9a-f]{16}$/);
  });

  it('gives the same key the same id and different keys different ids', () => {
    const key = generateRootKey();
    expect(rootKeyId(Buffer.from(key))).toBe(rootKeyId(key));
    expect(rootKeyId(generateRootKey())).not.toBe(rootKeyId(key));
  });

  it('generates 32-byte random root keys', () => {
    const a = generateRootKey();
    expect(a.length).toBe(32);
    expect(a.equals(generateRootKey())).toBe(false);
  });
});

describe('local key provider', () => {
  it('wraps with the first key and unwraps what it wrapped', async () => {
    const keys = [generateRootKey(), generateRootKey()];
    const provider = createLocalKeyProvider('env', keys);
    expect(provider.kind).toBe('env');
    expect(provider.activeKeyId()).toBe(rootKeyId(keys[0] as Buffer));
    expect(provider.keyIds()).toEqual(keys.map(rootKeyId));
    await expectRoundTrip(provider);
  });

  it('wraps with the key named active when one is given', async () => {
    const keys = [generateRootKey(), generateRootKey()];
    const second = rootKeyId(keys[1] as Buffer);
    const provider = createLocalKeyProvider('file', keys, second);
    expect((await provider.wrapKey(Buffer.alloc(32), aad)).rootKeyId).toBe(second);
  });

  it('unwraps keys wrapped by an older active key after rotation', async () => {
    const oldKey = generateRootKey();
    const before = createLocalKeyProvider('env', [oldKey]);
    const plain = generateRootKey();
    const wrapped = await before.wrapKey(plain, aad);
    const after = createLocalKeyProvider('env', [generateRootKey(), oldKey]);
    expect(after.activeKeyId()).not.toBe(wrapped.rootKeyId);
    expect((await after.unwrapKey(wrapped, aad)).equals(plain)).toBe(true);
  });

  it('lays out wrapped keys as version 0x01, a 12-byte IV, the ciphertext and a 16-byte tag', async () => {
    const provider = createLocalKeyProvider('env', [generateRootKey()]);
    const wrapped = await provider.wrapKey(Buffer.alloc(32, 1), aad);
    expect(wrapped.ciphertext[0]).toBe(0x01);
    expect(wrapped.ciphertext.length).toBe(1 + 12 + 32 + 16);
  });

  it('reports a root key id it does not hold as unavailable', async () => {
    const provider = createLocalKeyProvider('env', [generateRootKey()]);
    const wrapped = await provider.wrapKey(generateRootKey(), aad);
    const stranger = createLocalKeyProvider('env', [generateRootKey()]);
    expect(stranger.hasKey(wrapped.rootKeyId)).toBe(false);
    const failure = await cryptoFailureAsync(() => stranger.unwrapKey(wrapped, aad));
    expect(failure).toEqual({
      code: 'root_key_unavailable',
      message: `root key ${wrapped.rootKeyId} is not loaded; was the master key changed?`,
    });
  });

  it('reports a wrapped key that fails authentication as a root key mismatch naming the id', async () => {
    const provider = createLocalKeyProvider('env', [generateRootKey()]);
    const wrapped = await provider.wrapKey(generateRootKey(), aad);
    const failure = await cryptoFailureAsync(() => provider.unwrapKey(wrapped, Buffer.from('other aad')));
    expect(failure.code).toBe('root_key_mismatch');
    expect(failure.message).toContain(wrapped.rootKeyId);
  });

  it('never returns bytes for a wrapped key with any changed byte (property)', async () => {
    const provider = createLocalKeyProvider('env', [generateRootKey()]);
    const wrapped = await provider.wrapKey(generateRootKey(), aad);
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: wrapped.ciphertext.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        async (index, xor) => {
          const ciphertext = Buffer.from(wrapped.ciphertext);
          ciphertext[index] = (ciphertext[index] as number) ^ xor;
          const failure = await cryptoFailureAsync(() => provider.unwrapKey({ ...wrapped, ciphertext }, aad));
          expect(failure.code).toBe(index === 0 ? 'malformed_ciphertext' : 'root_key_mismatch');
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reports a too-short wrapped key as malformed', async () => {
    const provider = createLocalKeyProvider('env', [generateRootKey()]);
    const failure = await cryptoFailureAsync(() =>
      provider.unwrapKey({ rootKeyId: provider.activeKeyId(), ciphertext: Buffer.of(1, 2, 3) }, aad),
    );
    expect(failure.code).toBe('malformed_ciphertext');
  });

  it('refuses no keys, a key of the wrong length, or an unknown active id', () => {
    expect(cryptoFailure(() => createLocalKeyProvider('env', [])).code).toBe('key_config_invalid');
    expect(cryptoFailure(() => createLocalKeyProvider('env', [Buffer.alloc(16)])).code).toBe('key_config_invalid');
    expect(cryptoFailure(() => createLocalKeyProvider('env', [generateRootKey()], 'rk_0000000000000000')).code).toBe(
      'key_config_invalid',
    );
  });

  it('does not expose key material when the provider is printed or serialised', async () => {
    const key = generateRootKey();
    const provider = createLocalKeyProvider('env', [key]);
    const { inspect } = await import('node:util');
    const shown = `${inspect(provider, { depth: 5 })}${JSON.stringify(provider)}`;
    expect(shown).not.toContain(key.toString('base64'));
    expect(shown).not.toContain(key.toString('hex'));
  });
});

describe('HUSH_MASTER_KEY parsing', () => {
  it('accepts one standard base64 key', async () => {
    const key = generateRootKey();
    const provider = parseEnvMasterKey(key.toString('base64'));
    expect(provider.kind).toBe('env');
    expect(provider.activeKeyId()).toBe(rootKeyId(key));
    await expectRoundTrip(provider);
  });

  it('accepts URL-safe base64 with or without padding', () => {
    const key = generateRootKey();
    expect(parseEnvMasterKey(key.toString('base64url')).activeKeyId()).toBe(rootKeyId(key));
    expect(parseEnvMasterKey(`${key.toString('base64url')}=`).activeKeyId()).toBe(rootKeyId(key));
  });

  it('accepts several comma-separated keys, the first active', () => {
    const keys = [generateRootKey(), generateRootKey(), generateRootKey()];
    const provider = parseEnvMasterKey(` ${keys.map((k) => k.toString('base64')).join(' , ')} `);
    expect(provider.activeKeyId()).toBe(rootKeyId(keys[0] as Buffer));
    expect(provider.keyIds()).toEqual(keys.map(rootKeyId));
  });

  const badValues: Array<[string, string]> = [
    ['a key of the wrong length', Buffer.alloc(16, 9).toString('base64')],
    ['a value that is not base64', 'this is not base64 at all!!'],
    ['an empty value', '  '],
    ['a stray comma', `${generateRootKey().toString('base64')},`],
    ['a repeated key', `${Buffer.alloc(32, 3).toString('base64')},${Buffer.alloc(32, 3).toString('base64')}`],
    ['one bad key among good ones', `${generateRootKey().toString('base64')},c2hvcnQ=`],
  ];

  for (const [name, value] of badValues) {
    it(`rejects ${name} without echoing the value`, () => {
      const failure = cryptoFailure(() => parseEnvMasterKey(value));
      expect(failure.code).toBe('key_config_invalid');
      expect(failure.message).toContain('HUSH_MASTER_KEY');
      for (const part of value.split(',').map((p) => p.trim())) {
        if (part.length > 0) expect(failure.message).not.toContain(part);
      }
    });
  }

  it('never echoes any part of a rejected value (property)', () => {
    // Every value starts with a marker that no message template contains.
    const marker = 'Zq9x';
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 80 }), fc.base64String({ maxLength: 80 })), (rest) => {
        try {
          parseEnvMasterKey(`${marker}${rest}`);
        } catch (error) {
          expect(error).toBeInstanceOf(CryptoError);
          expect((error as CryptoError).code).toBe('key_config_invalid');
          expect((error as CryptoError).message).not.toContain(marker);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('master key file', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hush-keys-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the file, its directory and one key on first open, readable only by the owner', async () => {
    const file = path.join(dir, 'nested', 'data', 'master.key');
    const { provider, created } = openFileKeyProvider(file);
    expect(created).toBe(true);
    expect(provider.kind).toBe('file');
    if (isPosix) expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(keyFilePermissionsTooOpen(file)).toBe(false);
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    expect(doc.version).toBe(1);
    expect(doc.active).toBe(provider.activeKeyId());
    expect(doc.keys).toHaveLength(1);
    expect(doc.keys[0].id).toBe(rootKeyId(Buffer.from(doc.keys[0].key, 'base64')));
    expect(Number.isNaN(Date.parse(doc.keys[0].createdAt))).toBe(false);
    expect(readdirSync(path.dirname(file))).toEqual(['master.key']);
    await expectRoundTrip(provider);
  });

  it('reopens an existing file with the same key id and unwraps what it wrapped before', async () => {
    const file = path.join(dir, 'master.key');
    const first = openFileKeyProvider(file).provider;
    const wrapped = await first.wrapKey(Buffer.alloc(32, 5), aad);
    const again = openFileKeyProvider(file);
    expect(again.created).toBe(false);
    expect(again.provider.activeKeyId()).toBe(first.activeKeyId());
    expect((await again.provider.unwrapKey(wrapped, aad)).equals(Buffer.alloc(32, 5))).toBe(true);
  });

  it.runIf(isPosix)('flags a key file readable by group or others', () => {
    const file = path.join(dir, 'master.key');
    openFileKeyProvider(file);
    chmodSync(file, 0o644);
    expect(keyFilePermissionsTooOpen(file)).toBe(true);
  });

  const corruptions: Array<[string, (doc: Record<string, unknown>) => unknown]> = [
    ['text that is not JSON', () => '{"version":1,'],
    ['an unknown version', (doc) => ({ ...doc, version: 2 })],
    ['no keys', (doc) => ({ ...doc, keys: [] })],
    ['an active id it does not contain', (doc) => ({ ...doc, active: 'rk_0000000000000000' })],
    [
      'an id that does not match its key',
      (doc) => ({
        ...doc,
        keys: (doc.keys as Array<Record<string, unknown>>).map((k) => ({ ...k, id: 'rk_0123456789abcdef' })),
      }),
    ],
    [
      'a key of the wrong length',
      (doc) => ({
        ...doc,
        keys: (doc.keys as Array<Record<string, unknown>>).map((k) => ({ ...k, key: 'c2hvcnQ=' })),
      }),
    ],
  ];

  for (const [name, corrupt] of corruptions) {
    it(`rejects a key file with ${name}`, () => {
      const file = path.join(dir, 'master.key');
      openFileKeyProvider(file);
      const doc = JSON.parse(readFileSync(file, 'utf8'));
      const replaced = corrupt(doc);
      writeFileSync(file, typeof replaced === 'string' ? replaced : JSON.stringify(replaced));
      const failure = cryptoFailure(() => openFileKeyProvider(file));
      expect(failure.code).toBe('key_config_invalid');
      expect(failure.message).toContain(file);
      expect(failure.message).not.toContain(doc.keys[0].key);
    });
  }

  it('adds a new root key that can become active while old keys keep unwrapping', async () => {
    const file = path.join(dir, 'master.key');
    const original = openFileKeyProvider(file).provider;
    const wrapped = await original.wrapKey(Buffer.alloc(32, 8), aad);

    const standby = addRootKeyToFile(file, false);
    const afterStandby = openFileKeyProvider(file).provider;
    expect(afterStandby.activeKeyId()).toBe(original.activeKeyId());
    expect(afterStandby.hasKey(standby)).toBe(true);

    const newest = addRootKeyToFile(file, true);
    const rotated = openFileKeyProvider(file).provider;
    expect(rotated.activeKeyId()).toBe(newest);
    expect(rotated.keyIds()).toEqual([original.activeKeyId(), standby, newest]);
    expect((await rotated.unwrapKey(wrapped, aad)).equals(Buffer.alloc(32, 8))).toBe(true);
    expect((await rotated.wrapKey(Buffer.alloc(32), aad)).rootKeyId).toBe(newest);

    if (isPosix) expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['master.key']);
  });

  it('refuses to add a key to a file that does not exist', () => {
    const failure = cryptoFailure(() => addRootKeyToFile(path.join(dir, 'missing.key'), true));
    expect(failure.code).toBe('key_config_invalid');
  });
});

describe('memory KMS', () => {
  it('wraps and unwraps with remote-style key ids', async () => {
    const kms = createMemoryKms();
    expect(kms.kind).toBe('memory-kms');
    expect(kms.activeKeyId()).toMatch(/^kms_[0-9a-f]{16}$/);
    await expectRoundTrip(kms);
  });

  it('keeps unwrapping keys wrapped before rotate()', async () => {
    const kms = createMemoryKms();
    const plain = generateRootKey();
    const wrapped = await kms.wrapKey(plain, aad);
    const newId = kms.rotate();
    expect(kms.activeKeyId()).toBe(newId);
    expect(newId).not.toBe(wrapped.rootKeyId);
    expect(kms.keyIds()).toEqual([wrapped.rootKeyId, newId]);
    expect((await kms.unwrapKey(wrapped, aad)).equals(plain)).toBe(true);
    expect((await kms.wrapKey(plain, aad)).rootKeyId).toBe(newId);
  });

  it('refuses keys from another KMS and tampered or moved wrapped keys', async () => {
    const kms = createMemoryKms();
    const wrapped = await kms.wrapKey(generateRootKey(), aad);
    const otherKms = createMemoryKms();
    expect((await cryptoFailureAsync(() => otherKms.unwrapKey(wrapped, aad))).code).toBe('root_key_unavailable');
    expect((await cryptoFailureAsync(() => kms.unwrapKey(wrapped, Buffer.from('moved')))).code).toBe(
      'root_key_mismatch',
    );
  });
});
