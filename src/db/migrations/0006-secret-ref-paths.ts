/**
 * Secret references index their field by path, and a JSON body's paths now
 * escape `#` inside a key as `~2` (so a key's own field, `…/a#key`, never
 * equals the value path of a key named "a#key"). References stored before
 * hold the old spelling; without this, re-saving an unchanged workflow would
 * look like moving a secret (403 without `secrets.use`) and usages would show
 * the old path. A secret reference is always a value (keys hold none), so
 * every `#` in its path is part of a key name.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    update workflow_secret_refs set field = replace(field, '#', '~2')
    where field like 'body.content/%' and field like '%#%'
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    update workflow_secret_refs set field = replace(field, '~2', '#')
    where field like 'body.content/%' and field like '%~2%'
  `.execute(db);
}
