/**
 * Role names as people read them. A role's name is what a member list shows
 * next to a person, so two names that look alike must not both exist, and a
 * custom role must not look like a system role ("Оwner" with a Cyrillic О,
 * "ｏｗｎｅｒ" in fullwidth letters, "Admın" with a dotless ı).
 *
 * - `roleNameKey`: what names are compared by — NFKC (fullwidth, ligatures,
 *   styled letters become plain ones), lower case, and a few Latin letters
 *   that differ from a plain one only by a missing dot or a glyph variant.
 *   Unique per workspace in the database (`roles.name_key`).
 * - `mixesScripts`: letters from more than one of Latin, Greek and Cyrillic,
 *   the scripts whose letters imitate each other. Such a name is refused;
 *   each script alone is fine ("Операторы", "Ομάδα"), as is any of them
 *   with another script ("Dev 開発").
 *
 * Not a full confusable skeleton (Unicode TS #39): a name written wholly in
 * another script can still resemble a Latin one. With the mixed-script rule
 * such a name needs every letter to have a lookalike there, which none of
 * the system role names has.
 */

/** Latin letters NFKC leaves alone that read as a plain letter. */
const LOOKALIKES: Readonly<Record<string, string>> = {
  ı: 'i', // dotless i
  ȷ: 'j', // dotless j
  ɑ: 'a', // Latin alpha
  ɡ: 'g', // script g
  ʟ: 'l', // small capital L
  ɪ: 'i', // small capital I
};

/** The form two role names are compared in: equal keys, one name. */
export function roleNameKey(name: string): string {
  const folded = name.normalize('NFKC').toLowerCase().normalize('NFKC');
  let key = '';
  for (const c of folded) key += LOOKALIKES[c] ?? c;
  return key;
}

const CONFUSABLE_SCRIPTS = [/\p{Script=Latin}/u, /\p{Script=Greek}/u, /\p{Script=Cyrillic}/u];

/** Whether `name` has letters of two or more of Latin, Greek and Cyrillic. */
export function mixesScripts(name: string): boolean {
  const normalized = name.normalize('NFKC');
  return CONFUSABLE_SCRIPTS.filter((script) => script.test(normalized)).length > 1;
}
