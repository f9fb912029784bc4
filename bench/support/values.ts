/** Random-looking but reproducible secret values for the benchmarks. */

/** API-key-like characters, including some that change the encoded forms (`/ + . -`). */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./+';

/** A `length`-character value drawn from `random` (e.g. seededRandom). */
export function randomSecretValue(random: () => number, length = 24): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[Math.floor(random() * ALPHABET.length)];
  return out;
}
