import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CryptoError } from '../app/errors.js';
import {
  decryptSecretValue,
  encryptSecretValue,
  generateDataKey,
  type SecretValueContext,
  secretValueAad,
  unwrapWorkspaceKey,
  workspaceKeyAad,
  wrapWorkspaceKey,
} from './envelope.js';
import { createMemoryKms } from './memory-kms.js';
import { createLocalKeyProvider, generateRootKey } from './root-keys.js';

const ctx: SecretValueContext = { workspaceId: 'ws_alpha', secretId: 'sec_1', version: 1, keyVersion: 1 };

/** Runs `fn`, expecting a CryptoError; returns its code and message. */
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

const contextArb: fc.Arbitrary<SecretValueContext> = fc.record({
  workspaceId: fc.string({ minLength: 1, maxLength: 40 }),
  secretId: fc.string({ minLength: 1, maxLength: 40 }),
  version: fc.nat({ max: 0xffff_ffff }),
  keyVersion: fc.nat({ max: 0xffff_ffff }),
});

describe('secret value encryption', () => {
  it('round-trips a string value', () => {
    const dek = generateDataKey();
    const blob = encryptSecretValue(dek, 'sk_live_abc123 ✓ ünïcode', ctx);
    expect(decryptSecretValue(dek, blob, ctx).toString('utf8')).toBe('sk_live_abc123 ✓ ünïcode');
  });

  it('round-trips binary values, including every byte value', () => {
    const dek = generateDataKey();
    const value = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect(decryptSecretValue(dek, encryptSecretValue(dek, value, ctx), ctx).equals(value)).toBe(true);
  });

  it('round-trips an empty value', () => {
    const dek = generateDataKey();
    const blob = encryptSecretValue(dek, '', ctx);
    expect(blob.length).toBe(1 + 12 + 16);
    expect(decryptSecretValue(dek, blob, ctx).length).toBe(0);
  });

  it('round-trips a 64 KiB value', () => {
    const dek = generateDataKey();
    const value = Buffer.alloc(64 * 1024, 0x5a);
    const blob = encryptSecretValue(dek, value, ctx);
    expect(blob.length).toBe(1 + 12 + value.length + 16);
    expect(decryptSecretValue(dek, blob, ctx).equals(value)).toBe(true);
  });

  it('lays out the blob as version 0x01, a 12-byte IV, the ciphertext and a 16-byte tag', () => {
    const blob = encryptSecretValue(generateDataKey(), 'hello', ctx);
    expect(blob[0]).toBe(0x01);
    expect(blob.length).toBe(1 + 12 + 5 + 16);
    expect(blob.includes(Buffer.from('hello'))).toBe(false);
  });

  it('gives two different ciphertexts for the same plaintext (fresh IV each time)', () => {
    const dek = generateDataKey();
    const a = encryptSecretValue(dek, 'same value', ctx);
    const b = encryptSecretValue(dek, 'same value', ctx);
    expect(a.equals(b)).toBe(false);
    expect(a.subarray(1, 13).equals(b.subarray(1, 13))).toBe(false);
  });

  it('round-trips any value under any context (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), contextArb, (value, context) => {
        const dek = generateDataKey();
        const blob = encryptSecretValue(dek, Buffer.from(value), context);
        expect(decryptSecretValue(dek, blob, context).equals(Buffer.from(value))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('round-trips any string under any context (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 500 }), contextArb, (value, context) => {
        const dek = generateDataKey();
        const blob = encryptSecretValue(dek, value, context);
        expect(decryptSecretValue(dek, blob, context).toString('utf8')).toBe(value);
      }),
      { numRuns: 200 },
    );
  });
});

describe('tampered secret values', () => {
  const positionClasses = ['version', 'iv', 'body', 'tag'] as const;

  it('refuses a blob with any single changed byte in version, IV, body or tag (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.constantFrom(...positionClasses),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (value, where, offset, xor) => {
          const dek = generateDataKey();
          const blob = encryptSecretValue(dek, Buffer.from(value), ctx);
          const bodyLength = blob.length - 29;
          const index = {
            version: 0,
            iv: 1 + (offset % 12),
            body: 13 + (offset % bodyLength),
            tag: blob.length - 16 + (offset % 16),
          }[where];
          const tampered = Buffer.from(blob);
          tampered[index] = (tampered[index] as number) ^ xor;
          const failure = cryptoFailure(() => decryptSecretValue(dek, tampered, ctx));
          expect(failure.code).toBe(where === 'version' ? 'malformed_ciphertext' : 'decrypt_failed');
        },
      ),
      { numRuns: 400 },
    );
  });

  it('refuses a truncated or extended blob', () => {
    const dek = generateDataKey();
    const blob = encryptSecretValue(dek, 'a value to cut', ctx);
    for (let length = 0; length < blob.length; length++) {
      const { code } = cryptoFailure(() => decryptSecretValue(dek, blob.subarray(0, length), ctx));
      expect(code).toBe(length < 29 ? 'malformed_ciphertext' : 'decrypt_failed');
    }
    const extended = Buffer.concat([blob, Buffer.of(0)]);
    expect(cryptoFailure(() => decryptSecretValue(dek, extended, ctx)).code).toBe('decrypt_failed');
  });

  it('refuses a blob of an unknown format version as malformed', () => {
    const dek = generateDataKey();
    const blob = encryptSecretValue(dek, 'v', ctx);
    blob[0] = 0x02;
    const failure = cryptoFailure(() => decryptSecretValue(dek, blob, ctx));
    expect(failure.code).toBe('malformed_ciphertext');
  });

  it('refuses a value encrypted under another workspace key', () => {
    const blob = encryptSecretValue(generateDataKey(), 'v', ctx);
    expect(cryptoFailure(() => decryptSecretValue(generateDataKey(), blob, ctx)).code).toBe('decrypt_failed');
  });

  it('never puts the plaintext in the error message', () => {
    const dek = generateDataKey();
    const plaintext = 'PLAINTEXT-MARKER-9f2c';
    const blob = encryptSecretValue(dek, plaintext, ctx);
    const failure = cryptoFailure(() => decryptSecretValue(dek, blob, { ...ctx, version: 2 }));
    expect(failure.message).toBe(
      'secret value failed authentication: it was tampered with, moved, or encrypted under another key',
    );
    expect(failure.message).not.toContain(plaintext);
  });
});

describe('moved secret values', () => {
  const moves: Array<[string, SecretValueContext]> = [
    ['another secret id', { ...ctx, secretId: 'sec_2' }],
    ['another version', { ...ctx, version: 2 }],
    ['another key version', { ...ctx, keyVersion: 2 }],
    ['another workspace', { ...ctx, workspaceId: 'ws_beta' }],
  ];

  for (const [name, moved] of moves) {
    it(`refuses a ciphertext moved to ${name}`, () => {
      const dek = generateDataKey();
      const blob = encryptSecretValue(dek, 'bound to its row', ctx);
      expect(cryptoFailure(() => decryptSecretValue(dek, blob, moved)).code).toBe('decrypt_failed');
    });
  }

  it('refuses a ciphertext moved to any other context (property)', () => {
    fc.assert(
      fc.property(contextArb, contextArb, (from, to) => {
        fc.pre(secretValueAad(from).equals(secretValueAad(to)) === false);
        const dek = generateDataKey();
        const blob = encryptSecretValue(dek, 'bound', from);
        expect(cryptoFailure(() => decryptSecretValue(dek, blob, to)).code).toBe('decrypt_failed');
      }),
      { numRuns: 200 },
    );
  });
});

describe('AAD layout', () => {
  it('encodes a secret value context as label, NUL, length-prefixed ids and uint32 numbers', () => {
    const aad = secretValueAad({ workspaceId: 'ws', secretId: 'sé', version: 7, keyVersion: 258 });
    const expected = Buffer.concat([
      Buffer.from('hush/secret-value/v1\0'),
      Buffer.of(0, 2),
      Buffer.from('ws'),
      Buffer.of(0, 3),
      Buffer.from('sé'),
      Buffer.of(0, 0, 0, 7),
      Buffer.of(0, 0, 1, 2),
    ]);
    expect(aad.equals(expected)).toBe(true);
  });

  it('encodes a workspace key context as label, NUL, length-prefixed id and uint32 key version', () => {
    const aad = workspaceKeyAad({ workspaceId: 'ws', keyVersion: 3 });
    const expected = Buffer.concat([
      Buffer.from('hush/workspace-key/v1\0'),
      Buffer.of(0, 2),
      Buffer.from('ws'),
      Buffer.of(0, 0, 0, 3),
    ]);
    expect(aad.equals(expected)).toBe(true);
  });

  it('keeps ids that only differ in where one ends apart', () => {
    const a = secretValueAad({ workspaceId: 'ab', secretId: 'c', version: 1, keyVersion: 1 });
    const b = secretValueAad({ workspaceId: 'a', secretId: 'bc', version: 1, keyVersion: 1 });
    expect(a.equals(b)).toBe(false);
  });

  it('gives distinct contexts distinct AADs (property)', () => {
    fc.assert(
      fc.property(contextArb, contextArb, (a, b) => {
        const same =
          a.workspaceId === b.workspaceId &&
          a.secretId === b.secretId &&
          a.version === b.version &&
          a.keyVersion === b.keyVersion;
        expect(secretValueAad(a).equals(secretValueAad(b))).toBe(same);
      }),
      { numRuns: 500 },
    );
  });

  it('rejects versions that do not fit a uint32', () => {
    expect(() => secretValueAad({ ...ctx, version: -1 })).toThrow(RangeError);
    expect(() => secretValueAad({ ...ctx, version: 1.5 })).toThrow(RangeError);
    expect(() => workspaceKeyAad({ workspaceId: 'ws', keyVersion: 2 ** 32 })).toThrow(RangeError);
  });
});

describe('workspace key wrapping', () => {
  const wsCtx = { workspaceId: 'ws_alpha', keyVersion: 1 };

  it('wraps and unwraps a workspace key with a local root key', async () => {
    const provider = createLocalKeyProvider('env', [generateRootKey()]);
    const dek = generateDataKey();
    const wrapped = await wrapWorkspaceKey(provider, dek, wsCtx);
    expect(wrapped.rootKeyId).toBe(provider.activeKeyId());
    expect(wrapped.ciphertext.length).toBe(1 + 12 + 32 + 16);
    expect(wrapped.ciphertext.includes(dek)).toBe(false);
    expect((await unwrapWorkspaceKey(provider, wrapped, wsCtx)).equals(dek)).toBe(true);
  });

  it('wraps and unwraps a workspace key through a KMS provider', async () => {
    const kms = createMemoryKms();
    const dek = generateDataKey();
    const wrapped = await wrapWorkspaceKey(kms, dek, wsCtx);
    expect((await unwrapWorkspaceKey(kms, wrapped, wsCtx)).equals(dek)).toBe(true);
  });

  it('refuses a wrapped key moved to another workspace or key version', async () => {
    const provider = createLocalKeyProvider('env', [generateRootKey()]);
    const wrapped = await wrapWorkspaceKey(provider, generateDataKey(), wsCtx);
    for (const moved of [
      { workspaceId: 'ws_beta', keyVersion: 1 },
      { workspaceId: 'ws_alpha', keyVersion: 2 },
    ]) {
      const failure = await cryptoFailureAsync(() => unwrapWorkspaceKey(provider, wrapped, moved));
      expect(failure.code).toBe('root_key_mismatch');
    }
  });

  it('refuses to unwrap under a provider holding another root key with the same id', async () => {
    const provider = createLocalKeyProvider('env', [generateRootKey()]);
    const other = createLocalKeyProvider('env', [generateRootKey()]);
    const wrapped = await wrapWorkspaceKey(provider, generateDataKey(), wsCtx);
    // A forged id pointing at the other provider's key: authentication must fail.
    const forged = { ...wrapped, rootKeyId: other.activeKeyId() };
    const failure = await cryptoFailureAsync(() => unwrapWorkspaceKey(other, forged, wsCtx));
    expect(failure.code).toBe('root_key_mismatch');
    expect(failure.message).toContain(other.activeKeyId());
  });

  it('refuses to unwrap under a provider that does not hold the root key', async () => {
    const provider = createLocalKeyProvider('env', [generateRootKey()]);
    const other = createLocalKeyProvider('env', [generateRootKey()]);
    const wrapped = await wrapWorkspaceKey(provider, generateDataKey(), wsCtx);
    const failure = await cryptoFailureAsync(() => unwrapWorkspaceKey(other, wrapped, wsCtx));
    expect(failure.code).toBe('root_key_unavailable');
    expect(failure.message).toBe(`root key ${wrapped.rootKeyId} is not loaded; was the master key changed?`);
  });

  it('refuses to wrap a data key that is not 32 bytes', async () => {
    const provider = createLocalKeyProvider('env', [generateRootKey()]);
    await expect(wrapWorkspaceKey(provider, Buffer.alloc(16), wsCtx)).rejects.toThrow(RangeError);
  });

  it('decrypts values end to end: root key → workspace key → secret value', async () => {
    const provider = createLocalKeyProvider('env', [generateRootKey()]);
    const dek = generateDataKey();
    const wrapped = await wrapWorkspaceKey(provider, dek, wsCtx);
    const blob = encryptSecretValue(dek, 'token-123', { ...wsCtx, secretId: 'sec_9', version: 4 });
    const unwrapped = await unwrapWorkspaceKey(provider, wrapped, wsCtx);
    const value = decryptSecretValue(unwrapped, blob, { ...wsCtx, secretId: 'sec_9', version: 4 });
    expect(value.toString()).toBe('token-123');
  });
});
