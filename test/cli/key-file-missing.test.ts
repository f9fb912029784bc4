/**
 * A running `hush serve` rereads the root key file when it changes. A file
 * that is missing for a moment (moved away while an operator copies or
 * restores it) must not be replaced by a new one: a new file holds one new
 * key and none of those the data is wrapped under, and what the server
 * wraps next would be lost once the operator's file is back.
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
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
