/**
 * Secrets through the HTTP API (SPEC §1, §2, §3, §4), on both databases, the
 * negative side as much as the positive: a value never comes back except
 * from the masked reveal, names and visibility are immutable, every value
 * change is a version, deletion is soft then purged, refusals change nothing,
 * and the audit trail records every action without a value in it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/modules/audit/audit-service.js';
import {
  purgeExpiredSecrets,
  purgeExpiredWorkspaces,
  startSecretRetentionSweep,
} from '../../src/modules/secrets/secret-service.js';
import { DATABASES } from '../support/databases.js';
import { buildTeam, inviteAndJoin, setupOwner, type Team } from '../support/fixtures.js';
import { type Reply, startTestApp, type TestApp, type TestClient } from '../support/harness.js';

const DAY_MS = 86_400_000;

function expectProblem(res: Reply, status: number, code?: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(typeof res.body?.code, res.text).toBe('string');
  if (code !== undefined) expect(res.body.code, res.text).toBe(code);
}

/** The value as it would appear raw or inside a JSON string. */
function forms(value: string): string[] {
  return [...new Set([value, JSON.stringify(value).slice(1, -1)])];
}

function expectNoValue(text: string, values: readonly string[]): void {
  for (const v of values) {
    for (const f of forms(v)) {
      expect(text.includes(f), `text holds a secret value (${f.slice(0, 6)}…)`).toBe(false);
    }
  }
}

let counter = 0;
function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}_${counter}`;
}

describe.each(DATABASES)('secrets on $kind', ({ kind, available }) => {
  let t: TestApp;
  let team: Team;
  let ws: string;
  let owner: TestClient;
  /** Every value sent to the server in this suite (8+ bytes), for the leak checks. */
  const usedValues: string[] = [];

  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind, { HUSH_REVEAL_LIMIT_PER_MIN: '100000' });
    team = await buildTeam(t);
    ws = team.workspaceId;
    owner = team.owner;
  }, 120_000);
  afterAll(async () => t?.close());

  const secretsUrl = (workspaceId = ws) => `/api/v1/workspaces/${workspaceId}/secrets`;
  const secretUrl = (id: string, workspaceId = ws) => `${secretsUrl(workspaceId)}/${id}`;

  function remember(value: string): void {
    if (Buffer.byteLength(value) >= 8) usedValues.push(value);
  }

  async function createSecret(
    body: { name?: string; value?: string; visibility?: string; description?: string; allowedHosts?: string[] },
    by: TestClient = owner,
    workspaceId = ws,
  ): Promise<{ id: string; name: string; value: string; res: Reply }> {
    const name = body.name ?? uniqueName('SECRET');
    const value = body.value ?? `value-of-${name}-${Math.random().toString(36).slice(2)}`;
    remember(value);
    const res = await by.post(secretsUrl(workspaceId), { visibility: 'masked', ...body, name, value });
    expect(res.status, res.text).toBe(201);
    return { id: res.body.id as string, name, value, res };
  }

  async function patchSecret(id: string, body: Record<string, unknown>, headers?: Record<string, string>) {
    if (typeof body.value === 'string') remember(body.value);
    return owner.patch(secretUrl(id), body, headers);
  }

  async function reveal(id: string, by: TestClient = owner, workspaceId = ws) {
    return by.post(`${secretUrl(id, workspaceId)}/reveal`);
  }

  async function freshWorkspace(name = 'Scratch'): Promise<string> {
    const res = await owner.post('/api/v1/workspaces', { name });
    expect(res.status, res.text).toBe(201);
    return res.body.id as string;
  }

  async function auditEvents(filter: { action?: string; targetId?: string } = {}) {
    let q = t.ctx.db.selectFrom('audit_events').selectAll();
    if (filter.action) q = q.where('action', '=', filter.action);
    if (filter.targetId) q = q.where('target_id', '=', filter.targetId);
    return q.orderBy('at').orderBy('seq').execute();
  }

  async function versionRows(id: string) {
    return t.ctx.db.selectFrom('secret_versions').selectAll().where('secret_id', '=', id).orderBy('version').execute();
  }

  /** Everything a refused request must leave as it was. */
  async function snapshot(id: string) {
    const row = await t.ctx.db.selectFrom('secrets').selectAll().where('id', '=', id).executeTakeFirst();
    const versions = (await versionRows(id)).map((v) => [Number(v.version), Buffer.from(v.ciphertext).toString('hex')]);
    const audit = (await t.ctx.db.selectFrom('audit_events').select('id').execute()).length;
    const names = await t.ctx.db.selectFrom('variable_names').selectAll().orderBy('name_lower').execute();
    return { row, versions, audit, names };
  }

  async function listAll(url: string): Promise<{ names: string[]; pages: number }> {
    const names: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const sep = url.includes('?') ? '&' : '?';
      const res: Reply = await owner.get(`${url}${sep}limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status, res.text).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(2);
      names.push(...res.body.items.map((s: { name: string }) => s.name));
      cursor = res.body.nextCursor;
      pages += 1;
      expect(pages).toBeLessThan(50);
    } while (cursor);
    return { names, pages };
  }

  describe('a value is never shown', () => {
    it.runIf(available)('create returns the metadata and never the value', async () => {
      const value = 'sk_live_CreateOnly_9f8e7d6c5b4a';
      remember(value);
      const res = await owner.post(secretsUrl(), {
        name: 'Create_Only',
        visibility: 'masked',
        value,
        description: 'Stripe key',
      });
      expect(res.status, res.text).toBe(201);
      expect(res.text.includes(value)).toBe(false);
      expect(res.body).not.toHaveProperty('value');
      expect(res.body).toMatchObject({
        name: 'Create_Only',
        visibility: 'masked',
        description: 'Stripe key',
        allowedHosts: [],
        version: 1,
        createdBy: team.ownerId,
        updatedBy: team.ownerId,
        lastUsedAt: null,
        deletedAt: null,
        warnings: [],
      });
      expect(res.body.id).toMatch(/^[a-z]{2,4}_[0-9a-z]+$/);
      expect(typeof res.body.createdAt).toBe('string');

      // Nor does the database hold it in plain text.
      const row = await t.ctx.db.selectFrom('secrets').selectAll().where('id', '=', res.body.id).execute();
      expect(JSON.stringify(row).includes(value)).toBe(false);
      const versions = await versionRows(res.body.id);
      expect(versions).toHaveLength(1);
      expect(Buffer.from(versions[0]?.ciphertext ?? []).includes(Buffer.from(value))).toBe(false);
    });

    it.runIf(available)('a value under 8 bytes is accepted with the warning short_value', async () => {
      for (const [value, warnings] of [
        ['abc', ['short_value']],
        ['1234567', ['short_value']],
        ['ééé', ['short_value']],
        ['12345678', []],
        ['éééé', []],
      ] as const) {
        const res = await owner.post(secretsUrl(), { name: uniqueName('SHORT'), visibility: 'masked', value });
        expect(res.status, res.text).toBe(201);
        expect(res.body.warnings, value).toEqual(warnings);
      }
    });

    it.runIf(available)('list, get and versions never contain the value', async () => {
      const a = await createSecret({ value: 'list-never-shows-AAAA-1111' });
      const b = await createSecret({ value: 'list-never-shows-BBBB-2222', visibility: 'restricted' });
      const texts = [
        (await owner.get(secretsUrl())).text,
        (await owner.get(`${secretsUrl()}?limit=200`)).text,
        (await owner.get(secretUrl(a.id))).text,
        (await owner.get(secretUrl(b.id))).text,
        (await owner.get(`${secretUrl(a.id)}/versions`)).text,
        (await team.clients.editor.get(secretsUrl())).text,
      ];
      for (const text of texts) expectNoValue(text, [a.value, b.value]);
      const got = await owner.get(secretUrl(a.id));
      expect(got.status).toBe(200);
      expect(got.body).not.toHaveProperty('value');
      expect(got.body).toMatchObject({ id: a.id, name: a.name, visibility: 'masked', version: 1 });
    });
  });

  describe('listing', () => {
    it.runIf(available)('the list is sorted by name and ?q= searches names case-insensitively', async () => {
      const w = await freshWorkspace();
      for (const name of ['DELTA', 'ALPHA', 'CHARLIE', 'BRAVO', 'ECHO']) await createSecret({ name }, owner, w);
      const all = await owner.get(secretsUrl(w));
      expect(all.status, all.text).toBe(200);
      expect(all.body.items.map((s: { name: string }) => s.name)).toEqual([
        'ALPHA',
        'BRAVO',
        'CHARLIE',
        'DELTA',
        'ECHO',
      ]);
      expect(all.body.nextCursor).toBeNull();

      const names = async (q: string) =>
        (await owner.get(`${secretsUrl(w)}?q=${encodeURIComponent(q)}`)).body.items.map(
          (s: { name: string }) => s.name,
        );
      expect(await names('lPh')).toEqual(['ALPHA']);
      expect(await names('a')).toEqual(['ALPHA', 'BRAVO', 'CHARLIE', 'DELTA']);
      expect(await names('ECHO')).toEqual(['ECHO']);
      expect(await names('zzz')).toEqual([]);
    });

    it.runIf(available)('"%" and "_" in ?q= are literal characters, not wildcards', async () => {
      const w = await freshWorkspace();
      for (const name of ['A_B', 'AXB', 'AB', 'AXXB']) await createSecret({ name }, owner, w);
      const names = async (q: string) => {
        const res = await owner.get(`${secretsUrl(w)}?q=${encodeURIComponent(q)}`);
        expect(res.status, res.text).toBe(200);
        return res.body.items.map((s: { name: string }) => s.name);
      };
      expect(await names('a_b')).toEqual(['A_B']);
      expect(await names('_')).toEqual(['A_B']);
      expect(await names('%')).toEqual([]);
      expect(await names('a%b')).toEqual([]);
      expect(await names('\\')).toEqual([]);
    });

    it.runIf(available)('cursor pagination with limit=2 walks every secret exactly once', async () => {
      const w = await freshWorkspace();
      const created = ['KILO', 'FOXTROT', 'JULIET', 'GOLF', 'INDIA', 'HOTEL', 'LIMA'];
      for (const name of created) await createSecret({ name }, owner, w);
      const { names, pages } = await listAll(secretsUrl(w));
      expect(names).toEqual([...created].sort());
      expect(new Set(names).size).toBe(created.length);
      expect(pages).toBe(4);
      // With a search, too.
      const searched = await listAll(`${secretsUrl(w)}?q=i`);
      expect(searched.names).toEqual(['INDIA', 'JULIET', 'KILO', 'LIMA']);
    });

    it.runIf(available)('?deleted=true lists only deleted secrets; the default list omits them', async () => {
      const w = await freshWorkspace();
      const keep = await createSecret({ name: 'KEEP_ME' }, owner, w);
      const gone = await createSecret({ name: 'GONE_ME' }, owner, w);
      const also = await createSecret({ name: 'ALSO_KEPT' }, owner, w);
      expect((await owner.delete(secretUrl(gone.id, w))).status).toBe(204);

      const live = await owner.get(secretsUrl(w));
      expect(live.body.items.map((s: { id: string }) => s.id)).toEqual([also.id, keep.id]);
      const liveExplicit = await owner.get(`${secretsUrl(w)}?deleted=false`);
      expect(liveExplicit.body.items.map((s: { id: string }) => s.id)).toEqual([also.id, keep.id]);
      const deleted = await owner.get(`${secretsUrl(w)}?deleted=true`);
      expect(deleted.status, deleted.text).toBe(200);
      expect(deleted.body.items.map((s: { id: string }) => s.id)).toEqual([gone.id]);
      expect(deleted.body.items[0].deletedAt).toEqual(expect.any(String));
      expectProblem(await owner.get(`${secretsUrl(w)}?deleted=yes`), 422, 'validation_failed');
    });

    it.runIf(available)('a cursor this API did not issue is refused with 422', async () => {
      for (const cursor of ['not-a-cursor', Buffer.from('{"x":1}').toString('base64url'), '%%%']) {
        expectProblem(
          await owner.get(`${secretsUrl()}?cursor=${encodeURIComponent(cursor)}`),
          422,
          'validation_failed',
        );
      }
    });
  });

  describe('names', () => {
    it.runIf(available)('invalid names are refused with 422 and nothing is created', async () => {
      const before = (await t.ctx.db.selectFrom('secrets').select('id').execute()).length;
      for (const name of ['1abc', '$x', 'a'.repeat(65), 'a-b', '', 'a b', 'naïve', 'a.b', '{{x}}']) {
        const res = await owner.post(secretsUrl(), { name, visibility: 'masked', value: 'invalid-name-value' });
        expectProblem(res, 422, 'validation_failed');
        expect(res.body.errors?.map((e: { path: string }) => e.path)).toContain('body.name');
      }
      expect((await t.ctx.db.selectFrom('secrets').select('id').execute()).length).toBe(before);
      // The longest valid name is 64 characters.
      await createSecret({ name: `_${'a'.repeat(63)}` });
    });

    it.runIf(available)(
      'a name held by a custom variable, a secret or a deleted secret is taken, in any case',
      async () => {
        const variable = await owner.post(`/api/v1/workspaces/${ws}/variables`, { name: 'Token_Var', type: 'text' });
        expect(variable.status, variable.text).toBe(201);
        const secret = await createSecret({ name: 'Token_Sec' });
        const deleted = await createSecret({ name: 'Token_Del' });
        expect((await owner.delete(secretUrl(deleted.id))).status).toBe(204);

        const before = await snapshot(secret.id);
        for (const name of [
          'Token_Var',
          'TOKEN_VAR',
          'token_var',
          'Token_Sec',
          'TOKEN_SEC',
          'token_sec',
          'Token_Del',
          'TOKEN_DEL',
        ]) {
          const res = await owner.post(secretsUrl(), { name, visibility: 'masked', value: 'name-taken-value' });
          expectProblem(res, 409, 'name_taken');
          expect(res.text.includes('name-taken-value')).toBe(false);
        }
        // One name space, both ways: a variable cannot take a secret's name either.
        for (const name of ['token_sec', 'TOKEN_DEL']) {
          expectProblem(
            await owner.post(`/api/v1/workspaces/${ws}/variables`, { name, type: 'text' }),
            409,
            'name_taken',
          );
        }
        expect(await snapshot(secret.id)).toEqual(before);
      },
    );

    it.runIf(available)('after a purge the name is free again', async () => {
      const first = await createSecret({ name: 'Reusable' });
      expect((await owner.delete(secretUrl(first.id))).status).toBe(204);
      const held = await owner.post(secretsUrl(), { name: 'REUSABLE', visibility: 'masked', value: 'x-reuse-value' });
      expectProblem(held, 409, 'name_taken');
      // The detail says what to do: the name is held by a deleted secret (a variable gets the same).
      expect(held.body.detail).toBe(
        'The name "REUSABLE" is held by a deleted secret until it is purged: restore it, or purge it to free the name.',
      );
      const asVariable = await owner.post(`/api/v1/workspaces/${ws}/variables`, { name: 'reusable', type: 'text' });
      expectProblem(asVariable, 409, 'name_taken');
      expect(asVariable.body.detail).toContain('held by a deleted secret');
      expect((await owner.delete(`${secretUrl(first.id)}?purge=true`)).status).toBe(204);
      const second = await createSecret({ name: 'REUSABLE' });
      expect(second.id).not.toBe(first.id);

      // A purge straight from live frees it too.
      expect((await owner.delete(`${secretUrl(second.id)}?purge=true`)).status).toBe(204);
      const variable = await owner.post(`/api/v1/workspaces/${ws}/variables`, { name: 'reusable', type: 'text' });
      expect(variable.status, variable.text).toBe(201);
    });
  });

  describe('immutable fields', () => {
    it.runIf(available)(
      'changing the name or visibility is refused with immutable_field and changes nothing',
      async () => {
        const s = await createSecret({ name: 'Fixed_Name', value: 'immutable-original-value' });
        const before = await snapshot(s.id);
        const attempts: Record<string, unknown>[] = [
          { name: 'Other_Name' },
          { name: 'FIXED_NAME' },
          { visibility: 'restricted' },
          { name: 'Other_Name', value: 'immutable-sneaky-new-value' },
          { visibility: 'restricted', description: 'sneaky' },
          { visibility: 'public' },
        ];
        for (const body of attempts) {
          const res = await patchSecret(s.id, body);
          expectProblem(res, 422, 'immutable_field');
          const paths = res.body.errors.map((e: { path: string }) => e.path);
          if ('name' in body) expect(paths).toContain('body.name');
          if ('visibility' in body) expect(paths).toContain('body.visibility');
        }
        expect(await snapshot(s.id)).toEqual(before);
        const revealed = await reveal(s.id);
        expect(revealed.body.value).toBe('immutable-original-value');
        const got = await owner.get(secretUrl(s.id));
        expect(got.body).toMatchObject({ name: 'Fixed_Name', visibility: 'masked', version: 1, description: '' });

        // Sending the unchanged name and visibility along with a real change is fine.
        const ok = await patchSecret(s.id, { name: 'Fixed_Name', visibility: 'masked', description: 'same' });
        expect(ok.status, ok.text).toBe(200);
        expect(ok.body).toMatchObject({ name: 'Fixed_Name', visibility: 'masked', description: 'same', version: 1 });
      },
    );
  });

  describe('versions', () => {
    it.runIf(available)(
      'each value update is a new version; versions list metadata newest first, never a value',
      async () => {
        const s = await createSecret({ value: 'version-one-value-1111' });
        const v2 = await patchSecret(s.id, { value: 'version-two-value-2222' });
        expect(v2.status, v2.text).toBe(200);
        expect(v2.body.version).toBe(2);
        expect(v2.headers.etag).toBe('"2.1"');
        expectNoValue(v2.text, ['version-one-value-1111', 'version-two-value-2222']);
        const v3 = await patchSecret(s.id, { value: 'version-three-value-3333' });
        expect(v3.body.version).toBe(3);
        expect(v3.body.updatedBy).toBe(team.ownerId);

        const versions = await owner.get(`${secretUrl(s.id)}/versions`);
        expect(versions.status, versions.text).toBe(200);
        expect(versions.body.items.map((v: { version: number }) => v.version)).toEqual([3, 2, 1]);
        for (const v of versions.body.items) {
          expect(Object.keys(v).sort()).toEqual(['createdAt', 'createdBy', 'keyVersion', 'version']);
          expect(v.createdBy).toBe(team.ownerId);
        }
        expectNoValue(versions.text, ['version-one-value-1111', 'version-two-value-2222', 'version-three-value-3333']);
        expect((await reveal(s.id)).body.value).toBe('version-three-value-3333');
        expect(await versionRows(s.id)).toHaveLength(3);
      },
    );

    it.runIf(available)('a description- or hosts-only update does not bump the version', async () => {
      const s = await createSecret({ value: 'no-bump-value-4444' });
      const d = await patchSecret(s.id, { description: 'now described' });
      expect(d.status, d.text).toBe(200);
      expect(d.body).toMatchObject({ version: 1, description: 'now described' });
      const h = await patchSecret(s.id, { allowedHosts: ['api.example.com'] });
      expect(h.status, h.text).toBe(200);
      expect(h.body).toMatchObject({ version: 1, allowedHosts: ['api.example.com'] });
      const versions = await owner.get(`${secretUrl(s.id)}/versions`);
      expect(versions.body.items.map((v: { version: number }) => v.version)).toEqual([1]);
      expect((await reveal(s.id)).body.value).toBe('no-bump-value-4444');
    });

    it.runIf(available)(
      'If-Match with the current version succeeds; an old one is 412 version_conflict and changes nothing',
      async () => {
        const s = await createSecret({ value: 'if-match-value-v1' });
        const ok = await patchSecret(s.id, { value: 'if-match-value-v2' }, { 'if-match': '1' });
        expect(ok.status, ok.text).toBe(200);
        expect(ok.body.version).toBe(2);

        const before = await snapshot(s.id);
        for (const stale of ['1', '"1"', '3', '0']) {
          expectProblem(
            await patchSecret(s.id, { value: 'if-match-value-lost' }, { 'if-match': stale }),
            412,
            'version_conflict',
          );
          expectProblem(
            await patchSecret(s.id, { description: 'lost update' }, { 'if-match': stale }),
            412,
            'version_conflict',
          );
        }
        expect(await snapshot(s.id)).toEqual(before);
        expect((await reveal(s.id)).body.value).toBe('if-match-value-v2');

        // The ETag of a GET (version.revision) is a valid If-Match.
        const got = await owner.get(secretUrl(s.id));
        expect(got.headers.etag).toBe('"2.1"');
        const quoted = await patchSecret(
          s.id,
          { value: 'if-match-value-v3' },
          { 'if-match': String(got.headers.etag) },
        );
        expect(quoted.status, quoted.text).toBe(200);
        expect(quoted.body.version).toBe(3);
      },
    );

    it.runIf(available)('a malformed If-Match is refused with 422 and changes nothing', async () => {
      const s = await createSecret({ value: 'malformed-if-match-value' });
      const before = await snapshot(s.id);
      for (const header of ['abc', '1.x', '-1', 'v1', '"1.2.3"']) {
        expectProblem(await patchSecret(s.id, { value: 'malformed-if-match-new' }, { 'if-match': header }), 422);
      }
      // A weak tag never matches (If-Match compares strongly).
      expectProblem(
        await patchSecret(s.id, { value: 'malformed-if-match-new' }, { 'if-match': 'W/"1.0"' }),
        412,
        'version_conflict',
      );
      expect(await snapshot(s.id)).toEqual(before);
    });

    it.runIf(available)(
      'the ETag moves with every change: an edit of hosts or description from a stale copy is 412, not a silent overwrite',
      async () => {
        const s = await createSecret({ value: 'etag-revision-value', allowedHosts: ['a.example.com'] });
        const etag = String((await owner.get(secretUrl(s.id))).headers.etag);
        expect(etag).toBe('"1.0"');
        // Admin A narrows the hosts; admin B, holding the same ETag, would widen them.
        const a = await patchSecret(
          s.id,
          { allowedHosts: ['a.example.com'], description: 'narrowed' },
          { 'if-match': etag },
        );
        expect(a.status, a.text).toBe(200);
        expect(a.headers.etag).toBe('"1.1"');
        const before = await snapshot(s.id);
        expectProblem(
          await patchSecret(s.id, { allowedHosts: ['*.evil.example'] }, { 'if-match': etag }),
          412,
          'version_conflict',
        );
        expect(await snapshot(s.id)).toEqual(before);
        // The version alone (SPEC) still guards the value; `*` matches whatever is there.
        expect((await patchSecret(s.id, { description: 'by version' }, { 'if-match': '1' })).status).toBe(200);
        const any = await patchSecret(s.id, { description: 'any' }, { 'if-match': '*' });
        expect(any.status, any.text).toBe(200);
        expect(any.body).toMatchObject({ version: 1, revision: 3 });
      },
    );
  });

  describe('value size', () => {
    it.runIf(available)('exactly 64 KiB of UTF-8 is accepted, one byte more is refused', async () => {
      const fits = ['a'.repeat(65_536), 'é'.repeat(32_768), '😀'.repeat(16_384)];
      for (const value of fits) {
        expect(Buffer.byteLength(value)).toBe(65_536);
        const s = await createSecret({ value });
        const revealed = await reveal(s.id);
        expect(revealed.status).toBe(200);
        expect(revealed.body.value === value).toBe(true);
      }
      const before = (await t.ctx.db.selectFrom('secrets').select('id').execute()).length;
      const tooBig = ['a'.repeat(65_537), 'é'.repeat(32_769), `${'😀'.repeat(16_384)}a`, `${'é'.repeat(32_768)}a`];
      for (const value of tooBig) {
        expect(Buffer.byteLength(value)).toBeGreaterThan(65_536);
        const res = await owner.post(secretsUrl(), { name: uniqueName('BIG'), visibility: 'masked', value });
        expectProblem(res, 422, 'validation_failed');
        expect(res.body.errors?.[0]?.path).toBe('body.value');
      }
      expect((await t.ctx.db.selectFrom('secrets').select('id').execute()).length).toBe(before);

      // The same bound on update, and a refused update keeps the old value.
      const s = await createSecret({ value: 'size-update-original' });
      const snap = await snapshot(s.id);
      for (const value of tooBig) expectProblem(await patchSecret(s.id, { value }), 422, 'validation_failed');
      expect(await snapshot(s.id)).toEqual(snap);
      const ok = await patchSecret(s.id, { value: 'é'.repeat(32_768) });
      expect(ok.status, ok.text).toBe(200);
      expect((await reveal(s.id)).body.value).toBe('é'.repeat(32_768));
    });

    it.runIf(available)('an empty or missing value is refused', async () => {
      expectProblem(
        await owner.post(secretsUrl(), { name: uniqueName('EMPTY'), visibility: 'masked', value: '' }),
        422,
        'validation_failed',
      );
      expectProblem(
        await owner.post(secretsUrl(), { name: uniqueName('EMPTY'), visibility: 'masked' }),
        422,
        'validation_failed',
      );
      const s = await createSecret({ value: 'empty-update-original' });
      const snap = await snapshot(s.id);
      expectProblem(await patchSecret(s.id, { value: '' }), 422, 'validation_failed');
      expectProblem(await patchSecret(s.id, { value: null }), 422, 'validation_failed');
      expectProblem(await patchSecret(s.id, {}), 422, 'validation_failed');
      expect(await snapshot(s.id)).toEqual(snap);
    });

    it.runIf(available)('a value that is not valid Unicode is refused rather than stored altered', async () => {
      // A lone surrogate has no UTF-8 form: storing it would silently change the secret.
      const raw = '{"name":"LONE_SURROGATE","visibility":"masked","value":"abc\\ud800defghij"}';
      const res = await owner.request('POST', secretsUrl(), raw, { 'content-type': 'application/json' });
      if (res.status === 201) {
        const revealed = await reveal(res.body.id);
        expect(revealed.body.value, 'the stored value differs from the one sent').toBe('abc\ud800defghij');
      }
      expectProblem(res, 422);
    });
  });

  describe('reveal', () => {
    it.runIf(available)(
      'a masked secret reveals its exact value, unicode and special characters included',
      async () => {
        for (const value of [
          'pässwörd 🔑 密码 Ω',
          'line one\nline two\r\n\ttabbed "quoted" \\back\\slash',
          '{"json":"inside","n":1}',
          '  leading and trailing spaces  ',
          '\u0000nul-and-more\u0001',
        ]) {
          const s = await createSecret({ value });
          const res = await reveal(s.id);
          expect(res.status, res.text).toBe(200);
          expect(res.body).toEqual({ value });
        }
      },
    );

    it.runIf(available)('a restricted secret is never revealed, to owner, admin or editor', async () => {
      const s = await createSecret({ visibility: 'restricted', value: 'restricted-never-shown-5555' });
      for (const role of ['owner', 'admin', 'editor'] as const) {
        const res = await reveal(s.id, team.clients[role]);
        expectProblem(res, 403, 'secret_restricted');
        expect(res.text.includes('restricted-never-shown-5555')).toBe(false);
      }
      expect(await auditEvents({ action: 'secret.revealed', targetId: s.id })).toEqual([]);
    });

    it.runIf(available)('roles without secrets.reveal cannot reveal, nor even read secrets', async () => {
      const s = await createSecret({ value: 'low-roles-cannot-see-6666' });
      for (const role of ['manager', 'operator', 'viewer'] as const) {
        const c = team.clients[role];
        for (const res of [
          await reveal(s.id, c),
          await c.get(secretsUrl()),
          await c.get(secretUrl(s.id)),
          await c.get(`${secretUrl(s.id)}/versions`),
        ]) {
          expectProblem(res, 403, 'forbidden');
          expect(res.text.includes('low-roles-cannot-see-6666')).toBe(false);
        }
      }
      expectProblem(await reveal(s.id, team.outsider), 404, 'not_found');
      expectProblem(await reveal(s.id, team.anonymous), 401, 'unauthenticated');
      expect(await auditEvents({ action: 'secret.revealed', targetId: s.id })).toEqual([]);
    });

    it.runIf(available)('a reveal is audited, without the value', async () => {
      const s = await createSecret({ value: 'audited-reveal-value-7777' });
      const res = await reveal(s.id, team.clients.editor);
      expect(res.status, res.text).toBe(200);
      expect(res.body.value).toBe('audited-reveal-value-7777');
      const events = await auditEvents({ action: 'secret.revealed', targetId: s.id });
      expect(events).toHaveLength(1);
      const event = events[0];
      expect(event?.workspace_id).toBe(ws);
      expect(event?.actor_id).toBe(team.userIds.editor);
      expect(JSON.parse(event?.data ?? '{}')).toMatchObject({ version: 1 });
      expectNoValue(JSON.stringify(event), ['audited-reveal-value-7777']);
    });
  });

  describe('lifecycle', () => {
    it.runIf(available)(
      'a deleted secret shows deletedAt and purgeAt and can be neither revealed nor updated',
      async () => {
        const s = await createSecret({ value: 'deleted-secret-value-8888' });
        const del = await owner.delete(secretUrl(s.id));
        expect(del.status, del.text).toBe(204);
        const got = await owner.get(secretUrl(s.id));
        expect(got.status, got.text).toBe(200);
        expect(got.body.deletedAt).toEqual(expect.any(String));
        expect(Date.parse(got.body.purgeAt) - Date.parse(got.body.deletedAt)).toBe(7 * DAY_MS);

        const before = await snapshot(s.id);
        expectProblem(await reveal(s.id), 409, 'secret_deleted');
        expectProblem(await patchSecret(s.id, { value: 'deleted-secret-new-value' }), 409, 'secret_deleted');
        expectProblem(await patchSecret(s.id, { description: 'nope' }), 409, 'secret_deleted');
        expectProblem(await owner.delete(secretUrl(s.id)), 409);
        expect(await snapshot(s.id)).toEqual(before);
      },
    );

    it.runIf(available)('restore brings a secret back with its value; restoring a live one is 409', async () => {
      const s = await createSecret({ value: 'restorable-value-9999' });
      expect((await owner.delete(secretUrl(s.id))).status).toBe(204);
      const restored = await owner.post(`${secretUrl(s.id)}/restore`);
      expect(restored.status, restored.text).toBe(200);
      expect(restored.body).toMatchObject({ id: s.id, deletedAt: null, purgeAt: null, version: 1 });
      expectNoValue(restored.text, [s.value]);
      expect((await reveal(s.id)).body.value).toBe('restorable-value-9999');
      expect((await owner.get(secretsUrl())).body.items.map((x: { id: string }) => x.id)).toContain(s.id);

      const before = await snapshot(s.id);
      expectProblem(await owner.post(`${secretUrl(s.id)}/restore`), 409);
      expect(await snapshot(s.id)).toEqual(before);
    });

    it.runIf(available)('DELETE ?purge=true destroys every version and the secret is gone', async () => {
      const s = await createSecret({ value: 'purge-me-v1-value' });
      await patchSecret(s.id, { value: 'purge-me-v2-value' });
      await patchSecret(s.id, { value: 'purge-me-v3-value' });
      expect(await versionRows(s.id)).toHaveLength(3);
      const res = await owner.delete(`${secretUrl(s.id)}?purge=true`);
      expect(res.status, res.text).toBe(204);
      expect(await versionRows(s.id)).toHaveLength(0);
      expect(await t.ctx.db.selectFrom('secrets').select('id').where('id', '=', s.id).execute()).toEqual([]);
      expectProblem(await owner.get(secretUrl(s.id)), 404, 'not_found');
      expectProblem(await reveal(s.id), 404, 'not_found');
      expectProblem(await owner.get(`${secretUrl(s.id)}/versions`), 404, 'not_found');
      expectProblem(await owner.post(`${secretUrl(s.id)}/restore`), 404, 'not_found');
      expectProblem(await owner.delete(`${secretUrl(s.id)}?purge=true`), 404, 'not_found');

      // A soft-deleted secret can be purged as well.
      const d = await createSecret({});
      expect((await owner.delete(secretUrl(d.id))).status).toBe(204);
      expect((await owner.delete(`${secretUrl(d.id)}?purge=true`)).status).toBe(204);
      expect(await versionRows(d.id)).toHaveLength(0);
      expect(
        (await owner.get(`${secretsUrl()}?deleted=true&limit=200`)).body.items.map((x: { id: string }) => x.id),
      ).not.toContain(d.id);
    });

    it.runIf(available)(
      'the retention sweep purges a deleted secret once retention has passed, never a live one',
      async () => {
        const live = await createSecret({ value: 'sweep-live-value-aaaa' });
        const dead = await createSecret({ value: 'sweep-dead-value-bbbb' });
        expect((await owner.delete(secretUrl(dead.id))).status).toBe(204);

        // Within retention, nothing happens to it.
        await purgeExpiredSecrets(t.ctx, Date.now() + 6 * DAY_MS);
        expect(await versionRows(dead.id)).toHaveLength(1);
        expect((await owner.get(secretUrl(dead.id))).status).toBe(200);

        const purged = await purgeExpiredSecrets(t.ctx, Date.now() + 8 * DAY_MS);
        expect(purged).toBeGreaterThanOrEqual(1);
        expect(await versionRows(dead.id)).toHaveLength(0);
        expectProblem(await owner.get(secretUrl(dead.id)), 404, 'not_found');
        const events = await auditEvents({ action: 'secret.purged', targetId: dead.id });
        expect(events).toHaveLength(1);
        expect(events[0]?.actor_type).toBe('system');
        expect(events[0]?.workspace_id).toBe(ws);
        expect(JSON.parse(events[0]?.data ?? '{}')).toMatchObject({ reason: 'retention_expired' });

        // The live one is untouched, and the dead one's name is free.
        expect(await versionRows(live.id)).toHaveLength(1);
        expect((await reveal(live.id)).body.value).toBe('sweep-live-value-aaaa');
        expect(await auditEvents({ action: 'secret.purged', targetId: live.id })).toEqual([]);
        await createSecret({ name: dead.name });
      },
    );

    it.runIf(available)(
      "the retention sweep destroys a deleted workspace's secrets and keys, and its audit chain still verifies",
      async () => {
        const doomed = await freshWorkspace('Doomed');
        const kept = await createSecret({ value: 'kept-workspace-value-dddd' });
        const a = await createSecret({ value: 'doomed-value-one-eeee' }, owner, doomed);
        const patched = await owner.patch(secretUrl(a.id, doomed), { value: 'doomed-value-two-ffff' });
        expect(patched.status, patched.text).toBe(200);
        const b = await createSecret({ value: 'doomed-value-three-gggg' }, owner, doomed);
        expect((await owner.delete(secretUrl(b.id, doomed))).status).toBe(204);
        // A workspace has no purge-now: `?purge=true`, as on a secret, is refused and deletes nothing.
        const purgeNow = await owner.delete(`/api/v1/workspaces/${doomed}?purge=true`);
        expect(purgeNow.status, purgeNow.text).toBe(422);
        expect(purgeNow.body.code).toBe('validation_failed');
        expect((await owner.get(`/api/v1/workspaces/${doomed}`)).status).toBe(200);
        expect((await owner.delete(`/api/v1/workspaces/${doomed}`)).status).toBe(204);
        const material = async () => ({
          versions: (
            await t.ctx.db.selectFrom('secret_versions').select('version').where('workspace_id', '=', doomed).execute()
          ).length,
          secrets: (await t.ctx.db.selectFrom('secrets').select('id').where('workspace_id', '=', doomed).execute())
            .length,
          names: (
            await t.ctx.db
              .selectFrom('variable_names')
              .select('name_lower')
              .where('workspace_id', '=', doomed)
              .execute()
          ).length,
          keys: (
            await t.ctx.db.selectFrom('workspace_keys').select('version').where('workspace_id', '=', doomed).execute()
          ).length,
        });

        // Within retention, nothing is destroyed.
        expect(await purgeExpiredWorkspaces(t.ctx, Date.now() + 6 * DAY_MS)).toBe(0);
        expect(await material()).toEqual({ versions: 3, secrets: 2, names: 2, keys: 1 });

        // Deleted 8 days ago: the server's sweep (under its job lock) destroys it all.
        const eightDaysAgo = new Date(Date.now() - 8 * DAY_MS).toISOString();
        await t.ctx.db.updateTable('workspaces').set({ deleted_at: eightDaysAgo }).where('id', '=', doomed).execute();
        const stop = startSecretRetentionSweep(t.ctx, 3_600_000);
        try {
          await expect.poll(material, { timeout: 10_000 }).toEqual({ versions: 0, secrets: 0, names: 0, keys: 0 });
        } finally {
          stop();
        }
        await expect.poll(async () => (await auditEvents({ action: 'workspace.purged' })).length).toBe(2);
        const events = await auditEvents({ action: 'workspace.purged', targetId: doomed });
        expect(events.map((e) => e.chain).sort()).toEqual(['system', doomed].sort());
        for (const e of events) {
          expect(e.actor_type).toBe('system');
          expect(JSON.parse(e.data)).toEqual({ secrets: 2, versions: 3, keyVersions: 1, reason: 'retention_expired' });
        }
        // The trail outlives the purge: both chains verify, the workspace's with its creation in it.
        expect(await verifyChain(t.ctx.db, doomed, { mustExist: true })).toMatchObject({ ok: true });
        expect(await verifyChain(t.ctx.db, 'system')).toMatchObject({ ok: true });
        expect(await auditEvents({ action: 'workspace.created', targetId: doomed })).toHaveLength(1);

        // Purged once: a later sweep finds nothing to do and audits nothing.
        expect(await purgeExpiredWorkspaces(t.ctx, Date.now() + 9 * DAY_MS)).toBe(0);
        expect(await auditEvents({ action: 'workspace.purged', targetId: doomed })).toHaveLength(2);
        // Another workspace's secrets are untouched.
        expect((await reveal(kept.id)).body.value).toBe('kept-workspace-value-dddd');
      },
    );

    it.runIf(available)('a secret deleted longer ago than retention cannot be restored', async () => {
      const s = await createSecret({ value: 'too-late-to-restore-cccc' });
      expect((await owner.delete(secretUrl(s.id))).status).toBe(204);
      const eightDaysAgo = new Date(Date.now() - 8 * DAY_MS).toISOString();
      await t.ctx.db.updateTable('secrets').set({ deleted_at: eightDaysAgo }).where('id', '=', s.id).execute();
      const before = await snapshot(s.id);
      expectProblem(await owner.post(`${secretUrl(s.id)}/restore`), 409, 'retention_expired');
      expect(await snapshot(s.id)).toEqual(before);
      expect((await owner.get(secretUrl(s.id))).body.deletedAt).toBe(eightDaysAgo);
    });
  });

  describe('allowed hosts', () => {
    it.runIf(available)('allowed hosts are stored canonical: lower-cased and de-duplicated', async () => {
      const s = await createSecret({
        allowedHosts: [
          'API.Example.COM',
          'api.example.com',
          'api.example.com.',
          ' api.example.com ',
          '*.Foo.Example.com',
          '*.foo.example.com',
          '203.0.113.7',
          'bücher.example',
        ],
      });
      const expected = ['api.example.com', '*.foo.example.com', '203.0.113.7', 'xn--bcher-kva.example'];
      expect(s.res.body.allowedHosts).toEqual(expected);
      expect((await owner.get(secretUrl(s.id))).body.allowedHosts).toEqual(expected);
      const row = await t.ctx.db
        .selectFrom('secrets')
        .select('allowed_hosts')
        .where('id', '=', s.id)
        .executeTakeFirst();
      expect(JSON.parse(row?.allowed_hosts ?? '[]')).toEqual(expected);

      const updated = await patchSecret(s.id, { allowedHosts: ['HOOKS.Slack.com', 'hooks.slack.com'] });
      expect(updated.status, updated.text).toBe(200);
      expect(updated.body.allowedHosts).toEqual(['hooks.slack.com']);
      expect(updated.body.version).toBe(1);
    });

    it.runIf(available)('invalid host entries are refused with 422 naming each offending index', async () => {
      const hosts = ['good.example.com', 'https://x.com', '*.com', 'a.com:443', 'also-good.example.org'];
      const name = uniqueName('HOSTS');
      const res = await owner.post(secretsUrl(), {
        name,
        visibility: 'masked',
        value: 'bad-hosts-value',
        allowedHosts: hosts,
      });
      expectProblem(res, 422);
      const paths = res.body.errors.map((e: { path: string }) => e.path);
      expect(paths).toEqual(
        expect.arrayContaining(['body.allowedHosts.1', 'body.allowedHosts.2', 'body.allowedHosts.3']),
      );
      expect(paths).not.toContain('body.allowedHosts.0');
      expect(paths).not.toContain('body.allowedHosts.4');
      expect(await t.ctx.db.selectFrom('secrets').select('id').where('name', '=', name).execute()).toEqual([]);

      const s = await createSecret({ allowedHosts: ['keep.example.com'] });
      const before = await snapshot(s.id);
      for (const bad of [['https://x.com'], ['*.com'], ['a.com:443'], ['ok.example.com', 'a/b'], ['']]) {
        const r = await patchSecret(s.id, { allowedHosts: bad });
        expectProblem(r, 422);
        expect(r.body.errors.map((e: { path: string }) => e.path)).toContain(`body.allowedHosts.${bad.length - 1}`);
      }
      expect(await snapshot(s.id)).toEqual(before);
    });

    it.runIf(available)('a secret lists at most 20 allowed hosts', async () => {
      const hosts = Array.from({ length: 21 }, (_, i) => `h${i}.example.com`);
      const ok = await createSecret({ allowedHosts: hosts.slice(0, 20) });
      expect(ok.res.body.allowedHosts).toHaveLength(20);
      const name = uniqueName('MANY_HOSTS');
      expectProblem(
        await owner.post(secretsUrl(), { name, visibility: 'masked', value: 'too-many-hosts', allowedHosts: hosts }),
        422,
      );
      expect(await t.ctx.db.selectFrom('secrets').select('id').where('name', '=', name).execute()).toEqual([]);
      const before = await snapshot(ok.id);
      expectProblem(await patchSecret(ok.id, { allowedHosts: hosts }), 422);
      expect(await snapshot(ok.id)).toEqual(before);
    });

    it.runIf(available)(
      'with secretHostBinding "required" a secret must list its hosts; only the owner sets it',
      async () => {
        // An admin cannot change the workspace setting.
        expectProblem(
          await team.clients.admin.patch(`/api/v1/workspaces/${ws}`, { settings: { secretHostBinding: 'off' } }),
          403,
          'forbidden',
        );
        expect((await owner.get(`/api/v1/workspaces/${ws}`)).body.settings.secretHostBinding).toBe('pin-on-first-use');

        const w = await freshWorkspace('Strict');
        const set = await owner.patch(`/api/v1/workspaces/${w}`, { settings: { secretHostBinding: 'required' } });
        expect(set.status, set.text).toBe(200);
        expect(set.body.settings.secretHostBinding).toBe('required');

        const name = uniqueName('BOUND');
        expectProblem(
          await owner.post(secretsUrl(w), { name, visibility: 'masked', value: 'needs-hosts-value' }),
          422,
          'allowed_hosts_required',
        );
        expectProblem(
          await owner.post(secretsUrl(w), { name, visibility: 'masked', value: 'needs-hosts-value', allowedHosts: [] }),
          422,
          'allowed_hosts_required',
        );
        expect(await t.ctx.db.selectFrom('secrets').select('id').where('workspace_id', '=', w).execute()).toEqual([]);
        const s = await createSecret({ name, allowedHosts: ['api.example.com'] }, owner, w);
        expect(s.res.status).toBe(201);

        const before = await snapshot(s.id);
        expectProblem(await owner.patch(secretUrl(s.id, w), { allowedHosts: [] }), 422, 'allowed_hosts_required');
        expect(await snapshot(s.id)).toEqual(before);

        const off = await owner.patch(`/api/v1/workspaces/${w}`, { settings: { secretHostBinding: 'off' } });
        expect(off.status, off.text).toBe(200);
        await createSecret({}, owner, w);
        expectProblem(
          await owner.patch(`/api/v1/workspaces/${w}`, { settings: { secretHostBinding: 'sometimes' } }),
          422,
          'validation_failed',
        );
      },
    );
  });

  describe('who may manage secrets', () => {
    it.runIf(available)(
      'an editor can list, read and reveal, but not create, update, delete, restore or purge',
      async () => {
        const editor = team.clients.editor;
        const live = await createSecret({ value: 'editor-reads-this-dddd' });
        const deleted = await createSecret({ value: 'editor-cannot-restore-eeee' });
        expect((await owner.delete(secretUrl(deleted.id))).status).toBe(204);

        expect((await editor.get(secretsUrl())).status).toBe(200);
        expect((await editor.get(secretUrl(live.id))).status).toBe(200);
        expect((await editor.get(`${secretUrl(live.id)}/versions`)).status).toBe(200);
        expect((await reveal(live.id, editor)).body.value).toBe('editor-reads-this-dddd');

        const beforeLive = await snapshot(live.id);
        const beforeDeleted = await snapshot(deleted.id);
        const name = uniqueName('EDITOR_MADE');
        expectProblem(
          await editor.post(secretsUrl(), { name, visibility: 'masked', value: 'editor-new-value' }),
          403,
          'forbidden',
        );
        expectProblem(await editor.patch(secretUrl(live.id), { value: 'editor-changed-value' }), 403, 'forbidden');
        expectProblem(await editor.patch(secretUrl(live.id), { description: 'x' }), 403, 'forbidden');
        expectProblem(await editor.delete(secretUrl(live.id)), 403, 'forbidden');
        expectProblem(await editor.delete(`${secretUrl(live.id)}?purge=true`), 403, 'forbidden');
        expectProblem(await editor.delete(`${secretUrl(deleted.id)}?purge=true`), 403, 'forbidden');
        expectProblem(await editor.post(`${secretUrl(deleted.id)}/restore`), 403, 'forbidden');
        expect(await snapshot(live.id)).toEqual(beforeLive);
        expect(await snapshot(deleted.id)).toEqual(beforeDeleted);
        expect(await t.ctx.db.selectFrom('secrets').select('id').where('name', '=', name).execute()).toEqual([]);
      },
    );

    it.runIf(available)('an admin can create, update, delete, restore and purge', async () => {
      const admin = team.clients.admin;
      const s = await createSecret({ value: 'admin-made-value-ffff' }, admin);
      expect(s.res.body.createdBy).toBe(team.userIds.admin);
      const upd = await admin.patch(secretUrl(s.id), { value: 'admin-changed-value-gggg' });
      remember('admin-changed-value-gggg');
      expect(upd.status, upd.text).toBe(200);
      expect((await admin.delete(secretUrl(s.id))).status).toBe(204);
      expect((await admin.post(`${secretUrl(s.id)}/restore`)).status).toBe(200);
      expect((await reveal(s.id, admin)).body.value).toBe('admin-changed-value-gggg');
      expect((await admin.delete(`${secretUrl(s.id)}?purge=true`)).status).toBe(204);
    });
  });

  describe('audit trail', () => {
    it.runIf(available)('every secret action writes its audit event, and no audit row holds a value', async () => {
      const s = await createSecret({ value: 'audit-trail-value-v1-hhhh' });
      const up = await patchSecret(s.id, { value: 'audit-trail-value-v2-iiii' });
      expect(up.status).toBe(200);
      const desc = await patchSecret(s.id, { description: 'described' });
      expect(desc.status).toBe(200);
      expect((await reveal(s.id)).status).toBe(200);
      expect((await owner.delete(secretUrl(s.id))).status).toBe(204);
      expect((await owner.post(`${secretUrl(s.id)}/restore`)).status).toBe(200);
      expect((await owner.delete(`${secretUrl(s.id)}?purge=true`)).status).toBe(204);

      const events = await auditEvents({ targetId: s.id });
      expect(events.map((e) => e.action)).toEqual([
        'secret.created',
        'secret.updated',
        'secret.updated',
        'secret.revealed',
        'secret.deleted',
        'secret.restored',
        'secret.purged',
      ]);
      for (const e of events) {
        expect(e.workspace_id).toBe(ws);
        expect(e.actor_id).toBe(team.ownerId);
        expect(e.target_type).toBe('secret');
      }
      const data = events.map((e) => JSON.parse(e.data));
      expect(data[0]).toMatchObject({ name: s.name, visibility: 'masked', version: 1 });
      expect(data[1]).toMatchObject({ version: 2, fields: ['value'] });
      expect(data[2]).toMatchObject({ version: 2, fields: ['description'] });

      // No audit row, and no log line, holds any value used in this suite.
      const all = JSON.stringify(await t.ctx.db.selectFrom('audit_events').selectAll().execute());
      expect(usedValues.length).toBeGreaterThan(20);
      expectNoValue(all, usedValues);
      expectNoValue(t.logs.join('\n'), usedValues);

      const verify = await owner.get(`/api/v1/workspaces/${ws}/audit/verify`);
      expect(verify.status, verify.text).toBe(200);
      expect(verify.body.ok).toBe(true);
    });
  });

  describe('workspace isolation', () => {
    it.runIf(available)(
      "a secret of workspace A is 404 through workspace B's URL, even for an owner of both",
      async () => {
        const s = await createSecret({ value: 'isolated-in-a-jjjj' });
        const deleted = await createSecret({ value: 'isolated-deleted-kkkk' });
        expect((await owner.delete(secretUrl(deleted.id))).status).toBe(204);
        const b = await freshWorkspace('Other');
        const before = await snapshot(s.id);
        const beforeDeleted = await snapshot(deleted.id);
        for (const res of [
          await owner.get(secretUrl(s.id, b)),
          await owner.patch(secretUrl(s.id, b), { value: 'cross-workspace-value' }),
          await owner.patch(secretUrl(s.id, b), { description: 'x' }),
          await owner.get(`${secretUrl(s.id, b)}/versions`),
          await reveal(s.id, owner, b),
          await owner.delete(secretUrl(s.id, b)),
          await owner.delete(`${secretUrl(s.id, b)}?purge=true`),
          await owner.post(`${secretUrl(deleted.id, b)}/restore`),
          await owner.delete(`${secretUrl(deleted.id, b)}?purge=true`),
        ]) {
          expectProblem(res, 404, 'not_found');
          expectNoValue(res.text, [s.value]);
        }
        expect(await snapshot(s.id)).toEqual(before);
        expect(await snapshot(deleted.id)).toEqual(beforeDeleted);
        const listB = await owner.get(`${secretsUrl(b)}?limit=200`);
        expect(listB.body.items).toEqual([]);
        // Names are per workspace: B may use A's name.
        await createSecret({ name: s.name }, owner, b);
      },
    );
  });
});

describe.each(DATABASES)('reveal rate limit on $kind', ({ kind, available }) => {
  let t: TestApp;
  beforeAll(async () => {
    if (!available) return;
    t = await startTestApp(kind, { HUSH_REVEAL_LIMIT_PER_MIN: '3' });
  }, 120_000);
  afterAll(async () => t?.close());

  it.runIf(available)(
    'the 4th reveal in a minute by one user is 429 rate_limited; another user still can',
    async () => {
      const { owner, workspaceId } = await setupOwner(t);
      const admin = await inviteAndJoin(t, owner, workspaceId, 'admin@example.com', 'admin');
      const created = await owner.post(`/api/v1/workspaces/${workspaceId}/secrets`, {
        name: 'LIMITED',
        visibility: 'masked',
        value: 'rate-limited-value-llll',
      });
      expect(created.status, created.text).toBe(201);
      const url = `/api/v1/workspaces/${workspaceId}/secrets/${created.body.id}/reveal`;
      for (let i = 0; i < 3; i++) {
        const ok = await owner.post(url);
        expect(ok.status, ok.text).toBe(200);
        expect(ok.body.value).toBe('rate-limited-value-llll');
      }
      const limited = await owner.post(url);
      expectProblem(limited, 429, 'rate_limited');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect(limited.text.includes('rate-limited-value-llll')).toBe(false);

      const other = await admin.client.post(url);
      expect(other.status, other.text).toBe(200);
      expect(other.body.value).toBe('rate-limited-value-llll');

      const events = await t.ctx.db
        .selectFrom('audit_events')
        .select('id')
        .where('action', '=', 'secret.revealed')
        .where('target_id', '=', created.body.id)
        .execute();
      expect(events).toHaveLength(4);
    },
  );
});
