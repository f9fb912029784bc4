/**
 * A running `hush serve` rereads the root key file when it changes. A file
 * that is missing for a moment (moved away while an operator copies or
 * restores it) must not be replaced by a new one: a new file holds one new
 * key and none of those the data is wrapped under, and what the server
 * wraps next would be lost once the operator's file is back. Nor may a
 * server *started* without the file make one for a database that already
 * holds workspace keys (a second node without its copy, a volume not mounted).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { rootKeyId } from '../../src/crypto/root-keys.js';
import {
  createSite,
  describeRun,
  type HushServer,
  type HushSite,
  killStartedProcesses,
  runHush,
  setUp,
  startServer,
} from '../support/cli.js';
import { DATABASES } from '../support/databases.js';

const sites: HushSite[] = [];
const servers: HushServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop().catch(() => {});
  killStartedProcesses();
});
afterAll(async () => {
  for (const s of sites.splice(0)) await s.cleanup();
});

describe('a root key file missing while a server runs', () => {
  it('is not made anew: a workspace created meanwhile is wrapped under a key of the operator’s file', async () => {
    const site = await createSite('sqlite');
    sites.push(site);
    const server = await startServer(site.env);
    servers.push(server);
    const owner = await setUp(server);
    const file = path.join(site.dataDir, 'master.key');
    const keyFile = readFileSync(file, 'utf8');

    renameSync(file, `${file}.moved`);
    const created = await owner.session.post('/workspaces', { name: 'While the file was away' });
    expect(created.status, created.text).toBe(201);
    const ws = `/workspaces/${created.body.id}`;
    const secret = await owner.session.post(`${ws}/secrets`, {
      name: 'made_meanwhile',
      visibility: 'masked',
      value: 'meanwhile-value-0123',
    });
    expect(secret.status, secret.text).toBe(201);
    const madeAnew = existsSync(file);
    renameSync(`${file}.moved`, file);

    // With the operator's file back, a server started now reads what was written meanwhile.
    await server.stop();
    servers.splice(0);
    const again = await startServer(site.env);
    servers.push(again);
    const revealed = await owner.session.at(again.origin).post(`${ws}/secrets/${secret.body.id}/reveal`);
    expect(revealed.status, revealed.text).toBe(200);
    expect(revealed.body.value).toBe('meanwhile-value-0123');
    const doctor = await runHush(['doctor'], site.env);
    expect(doctor.code, describeRun(doctor)).toBe(0);
    expect(madeAnew, 'the server wrote a new key file').toBe(false);
    expect(readFileSync(file, 'utf8')).toBe(keyFile);
  });
});

describe.each(DATABASES)('a server started without the installation’s root key ($kind)', ({ kind, available }) => {
  it.runIf(available)(
    "of an installation that has workspace keys, or with another installation's key: exit 1, one line naming the keys",
    async () => {
      const site = await createSite(kind);
      sites.push(site);
      const server = await startServer(site.env);
      servers.push(server);
      const owner = await setUp(server);
      const secret = await owner.api.post(`/workspaces/${owner.workspaceId}/secrets`, {
        name: 'kept_value',
        visibility: 'masked',
        value: 'kept-value-0123456789',
      });
      expect(secret.status, secret.text).toBe(201);
      await server.stop();
      servers.splice(0);
      const file = path.join(site.dataDir, 'master.key');
      const keyId = (JSON.parse(readFileSync(file, 'utf8')) as { active: string }).active;
      renameSync(file, `${file}.away`);

      const refused = await runHush(['serve'], { ...site.env, HUSH_PORT: '0' }, { timeoutMs: 30_000 });
      expect(refused.code, describeRun(refused)).toBe(1);
      expect(refused.stderr.trim().split('\n')).toEqual([
        `hush: no root key file at ${file}, but the database holds workspace keys wrapped by ${keyId}: restore the key file from your key backup (a new key would open none of them; one is made only on a brand-new install)`,
      ]);
      expect(existsSync(file), 'serve made a new root key file').toBe(false);
      expect(readdirSync(site.dataDir).filter((f) => f.startsWith('master.key'))).toEqual(['master.key.away']);

      // Another installation's key — a file, or HUSH_MASTER_KEY — opens none of them: refused too.
      const otherKey = randomBytes(32);
      const otherId = rootKeyId(otherKey);
      const otherFile = path.join(site.dataDir, 'other.key');
      writeFileSync(
        otherFile,
        JSON.stringify({
          version: 1,
          active: otherId,
          keys: [{ id: otherId, key: otherKey.toString('base64'), createdAt: new Date().toISOString() }],
        }),
        { mode: 0o600 },
      );
      const otherKeys: Record<string, string>[] = [
        { HUSH_MASTER_KEY_FILE: otherFile },
        { HUSH_MASTER_KEY: otherKey.toString('base64') },
      ];
      for (const env of otherKeys) {
        const wrong = await runHush(['serve'], { ...site.env, ...env, HUSH_PORT: '0' }, { timeoutMs: 30_000 });
        expect(wrong.code, describeRun(wrong)).toBe(1);
        expect(wrong.stderr.trim().split('\n')).toEqual([
          `hush: the loaded root keys (${otherId}) open none of the database's workspace keys (wrapped by ${keyId}): start with the key file or HUSH_MASTER_KEY they were made with`,
        ]);
        expect(`${wrong.stdout}${wrong.stderr}`).not.toContain(otherKey.toString('base64'));
      }

      // With the operator's file back, the server starts and the value is there.
      renameSync(`${file}.away`, file);
      const again = await startServer(site.env);
      servers.push(again);
      const revealed = await owner.api
        .at(again.origin)
        .post(`/workspaces/${owner.workspaceId}/secrets/${secret.body.id}/reveal`);
      expect(revealed.status, revealed.text).toBe(200);
      expect(revealed.body.value).toBe('kept-value-0123456789');
    },
    120_000,
  );
});
