/**
 * Password hashing with argon2id (OWASP's minimum: 19 MiB, t=2, p=1).
 * `verifyDummy` spends the same time for an unknown account, so a login
 * cannot tell "no such user" from "wrong password" by timing.
 */
import { hash, verify } from '@node-rs/argon2';

// Algorithm is a const enum in @node-rs/argon2; 2 is Argon2id.
const ARGON2ID = 2;
const OPTIONS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(hashText: string, password: string): Promise<boolean>;
  verifyDummy(password: string): Promise<void>;
}

export function createPasswordHasher(): PasswordHasher {
  let dummy: Promise<string> | undefined;
  return {
    hash: (password) => hash(password, OPTIONS),
    verify: async (hashText, password) => {
      try {
        return await verify(hashText, password);
      } catch {
        return false;
      }
    },
    verifyDummy: async (password) => {
      dummy ??= hash('hush-dummy-password-for-timing', OPTIONS);
      await verify(await dummy, password).catch(() => false);
    },
  };
}
