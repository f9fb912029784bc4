/**
 * The leak suite, end to end (SPEC §3 "Where a value may appear"), on SQLite
 * and on PostgreSQL. Canary secrets — masked and restricted, with allowed
 * hosts, one multi-line, one updated to a second version, one purged, one
 * that only ever travels in refused requests — go through every path: the
 * secrets routes (create, update, versions, reveal, delete, restore, purge),
 * variables, workflows whose API blocks use them (save, Send request, runs
 * of three blocks with captures and a Set Values block), an upstream that
 * echoes each value back in every form the redaction must catch and fails in
 * every way a call can fail (500 echoing it, connection reset, timeouts, a
 * body over the cap, redirects to another host carrying it), and the UI in
 * Chromium (sign in, Variables panel, reveal and let it close, workflow
 * editor and Send request, Runs and a run detail, Audit log and its CSV).
 *
 * Then every form of every canary is searched for in every place a value
 * could end up: each HTTP response (API and browser network, body and
 * headers), the DOM and console of every page, the server log at debug, the
 * database files (SQLite db, WAL, shm) or pg_dump (and PostgreSQL's own
 * files when readable), the run records, the audit trail (the CSV route,
 * the browser's download and `hush audit export` in both formats), a backup
 * written by `hush backup` (gunzipped: the values are stored encrypted), the
 * output of those processes, and what the other host received. The one
 * exemption is a permitted reveal's answer, for the revealed secret only.
 *
 * It can fail: a planted form of each canary is found in every place's real
 * content, a control value stored in plain text on purpose (a variable's
 * test value) is found in the responses, runs, database and backup, the
 * values are found on the wire and in the reveal answers, and the revealed
 * value is found in the DOM while shown.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import pg from 'pg';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiPath,
  browserAvailable,
  domTexts,
  goTo,
  isRevealResponse,
  launchBrowser,
  type NetworkLog,
  openPage,
  signIn,
  unreadBodies,
} from '../support/browser.js';
import { LeakSearch, makeCanary } from '../support/canary.js';
import { describeRun, killStartedProcesses, runHush } from '../support/cli.js';
import { DATABASES } from '../support/databases.js';
import { buildTeam, type Team } from '../support/fixtures.js';
import type { Reply, TestClient } from '../support/harness.js';
import {
  type EchoUpstreams,
  LeakLedger,
  type LeakWorld,
  startEchoUpstreams,
  startLeakWorld,
} from '../support/leak-world.js';

const SUITE = 'leak suite end to end (API, runs, UI, logs, files, backup, audit export)';
// Under CI=true a missing Chromium fails here, as DATABASES fails for a missing PostgreSQL.
const browserOk = browserAvailable(SUITE);
const OWNER = 'owner@example.com';

const secretRow = (page: Page, name: string) =>
  page.getByRole('row').filter({ has: page.getByRole('rowheader', { name, exact: true }) });

/** The canaries of one database's run: fresh random values, so nothing from another test can match. */
function newCanaries() {
  const pemLine1 = makeCanary('pemline1');
  const pemLine2 = makeCanary('pemline2');
  return {
    crm: makeCanary('crm'), // restricted, allowed hosts 127.0.0.1
    zendeskV1: makeCanary('zdv1'), // masked, first version: used, then replaced
    zendesk: makeCanary('zdv2'), // masked, second version: used and revealed
    pem: `-----BEGIN HUSH TEST KEY-----\n${pemLine1}\n${pemLine2}\n-----END HUSH TEST KEY-----`, // multi-line, pinned on first use
    pemLine1,
    pemLine2,
    purged: makeCanary('purged'), // used once, then purged
    rejected: makeCanary('rejected'), // only ever in refused requests
  };
}
type CanaryName = keyof ReturnType<typeof newCanaries>;

describe.each(DATABASES)('leak end to end on $kind', ({ kind, available }) => {
  const canaries = newCanaries();
  // Stored in plain text on purpose (a variable's test and fallback value): the positive control.
  const control = makeCanary('control');
  let world: LeakWorld;
  let ups: EchoUpstreams;
  let team: Team;
  let ledger: LeakLedger;
  let browser: Browser | undefined;
  let ws: string;
  const ids: Record<string, string> = {};
  const workflows: Record<string, string> = {};
  const runIds: string[] = [];
  /** What each permitted reveal answered (checked: exactly the revealed value, once). */
  const revealed: { label: string; body: string; value: string }[] = [];
  const started = Date.now();
  /** The steps that ran to their end: the final search refuses to vouch for a partial world. */
  const done = new Set<string>();

  beforeAll(async () => {
    if (!available) return;
    ledger = new LeakLedger(canaries);
    [ups, world, browser] = await Promise.all([
      startEchoUpstreams(canaries),
      startLeakWorld(kind),
      browserOk ? launchBrowser() : Promise.resolve(undefined),
    ]);
    team = await buildTeam(world.t);
    ws = `/api/v1/workspaces/${team.workspaceId}`;
  }, 60_000);
  afterAll(async () => {
    killStartedProcesses();
    await browser?.close();
    await world?.close();
    await ups?.close();
  });

  /** One API request; its body and headers become places. A permitted reveal is exempt for its secret only. */
  const call = async (
    label: string,
    client: TestClient,
    method: string,
    url: string,
    body?: unknown,
    options: { headers?: Record<string, string>; reveals?: CanaryName } = {},
  ): Promise<Reply> => {
    const reply = await client.request(method, url, body, options.headers);
    const exempt = options.reveals && reply.status === 200 ? [options.reveals] : [];
    ledger.add(`api:${method} ${label} body`, reply.text, exempt);
    ledger.add(`api:${method} ${label} headers`, JSON.stringify(reply.headers));
    if (exempt.length > 0) {
      revealed.push({ label, body: reply.text, value: canaries[options.reveals as CanaryName] });
    }
    expect(reply.status, `${label}: ${reply.text.slice(0, 600)}`).toBeLessThan(500);
    return reply;
  };
  const expectStatus = (reply: Reply, status: number, label = '') =>
    expect(reply.status, `${label} ${reply.text.slice(0, 600)}`).toBe(status);

  const api = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    type: 'api',
    method: 'GET',
    url: `${ups.echo.url}/echo`,
    headers: [{ key: 'Authorization', value: 'Bearer {{secret:crm_key}}' }],
    ...extra,
  });

  it.runIf(available)(
    'secrets and variables routes: create, refuse, read, update, versions, reveal, delete, restore, purge',
    async () => {
      const { owner, admin, editor, manager, viewer, operator } = team.clients;
      const create = async (label: string, client: TestClient, body: Record<string, unknown>) => {
        const r = await call(label, client, 'POST', `${ws}/secrets`, body);
        expectStatus(r, 201, label);
        return r.body.id as string;
      };
      ids.zendesk = await create('create masked', owner, {
        name: 'zendesk_token',
        visibility: 'masked',
        value: canaries.zendeskV1,
        description: 'Zendesk API token',
        allowedHosts: ['127.0.0.1', '*.zendesk.com'],
      });
      ids.crm = await create('create restricted', admin, {
        name: 'crm_key',
        visibility: 'restricted',
        value: canaries.crm,
        allowedHosts: ['127.0.0.1'],
      });
      ids.pem = await create('create multi-line', owner, {
        name: 'pem_key',
        visibility: 'masked',
        value: canaries.pem,
        description: 'pinned to the first host it is sent to',
      });
      ids.purged = await create('create to purge', owner, {
        name: 'old_key',
        visibility: 'masked',
        value: canaries.purged,
        allowedHosts: ['127.0.0.1'],
      });

      // Refused creates and updates that carry a value.
      const rejected = canaries.rejected;
      const refused: [string, TestClient, unknown, number][] = [
        ['duplicate name', owner, { name: 'ZENDESK_TOKEN', visibility: 'masked', value: rejected }, 409],
        ['bad host', owner, { name: 'r1', visibility: 'masked', value: rejected, allowedHosts: ['https://x/'] }, 422],
        ['unknown field', owner, { name: 'r2', visibility: 'masked', value: rejected, note: rejected }, 422],
        ['bad visibility', owner, { name: 'r3', visibility: 'public', value: rejected }, 422],
        ['too large', owner, { name: 'r4', visibility: 'masked', value: `${rejected}${'z'.repeat(70_000)}` }, 422],
        ['editor create', editor, { name: 'r5', visibility: 'masked', value: rejected }, 403],
        ['outsider create', team.outsider, { name: 'r6', visibility: 'masked', value: rejected }, 404],
        ['anonymous create', team.anonymous, { name: 'r7', visibility: 'masked', value: rejected }, 401],
      ];
      for (const [label, client, body, status] of refused) {
        expectStatus(await call(label, client, 'POST', `${ws}/secrets`, body), status, label);
      }
      const broken = `{"name":"r8","visibility":"masked","value":${JSON.stringify(rejected)}`;
      expectStatus(
        await call('malformed json', owner, 'POST', `${ws}/secrets`, broken, {
          headers: { 'content-type': 'application/json' },
        }),
        400,
      );

      // Variables: typed values, never a secret reference; one name space with secrets.
      const variable = async (label: string, body: Record<string, unknown>, status: number) => {
        const r = await call(label, owner, 'POST', `${ws}/variables`, body);
        expectStatus(r, status, label);
        return r;
      };
      await variable(
        'variable region',
        { name: 'region', type: 'text', testValue: 'eu-test', fallbackValue: 'eu' },
        201,
      );
      await variable(
        'variable control (plain text on purpose)',
        { name: 'control_note', type: 'text', testValue: control, fallbackValue: control },
        201,
      );
      const smuggle = await variable(
        'variable with a secret reference',
        { name: 'smuggle', type: 'text', testValue: '{{secret:crm_key}}' },
        422,
      );
      expect(smuggle.body.code).toBe('secret_not_allowed_here');
      await variable('variable named like a secret', { name: 'CRM_KEY', type: 'text', testValue: 'x' }, 409);
      const temp = await variable('variable temp', { name: 'temp_var', type: 'map', testValue: { a: 1 } }, 201);
      expectStatus(
        await call('patch variable', owner, 'PATCH', `${ws}/variables/${temp.body.id}`, { description: 'temp' }),
        200,
      );
      expectStatus(await call('delete variable', owner, 'DELETE', `${ws}/variables/${temp.body.id}`), 204);

      // Reads by every role.
      for (const [role, client] of Object.entries({ owner, admin, editor, manager, viewer, operator })) {
        await call(`list secrets as ${role}`, client, 'GET', `${ws}/secrets`);
        await call(`list variables as ${role}`, client, 'GET', `${ws}/variables`);
        for (const [name, id] of Object.entries(ids)) {
          await call(`get ${name} as ${role}`, client, 'GET', `${ws}/secrets/${id}`);
          await call(`versions ${name} as ${role}`, client, 'GET', `${ws}/secrets/${id}/versions`);
        }
      }

      // The first version and the soon-purged secret go out once before they are replaced / destroyed.
      for (const [label, header] of [
        ['send v1', 'Bearer {{secret:zendesk_token}}'],
        ['send purged', 'Bearer {{secret:old_key}}'],
      ] as const) {
        const r = await call(label, editor, 'POST', `${ws}/blocks/send`, {
          block: api('v1', { headers: [{ key: 'Authorization', value: header }] }),
        });
        expectStatus(r, 200, label);
        expect(r.body.response.status).toBe(200);
      }
      expectStatus(
        await call('reveal v1', owner, 'POST', `${ws}/secrets/${ids.zendesk}/reveal`, {}, { reveals: 'zendeskV1' }),
        200,
      );

      // Update: a second version; refused updates carrying a value.
      expectStatus(
        await call(
          'update value',
          owner,
          'PATCH',
          `${ws}/secrets/${ids.zendesk}`,
          { value: canaries.zendesk },
          { headers: { 'if-match': '1' } },
        ),
        200,
      );
      expectStatus(
        await call(
          'stale if-match',
          owner,
          'PATCH',
          `${ws}/secrets/${ids.zendesk}`,
          { value: rejected },
          { headers: { 'if-match': '1' } },
        ),
        412,
      );
      expectStatus(await call('editor update', editor, 'PATCH', `${ws}/secrets/${ids.crm}`, { value: rejected }), 403);
      expectStatus(
        await call('rename with value', owner, 'PATCH', `${ws}/secrets/${ids.crm}`, { value: rejected, name: 'x' }),
        422,
      );
      const versions = await call('versions after update', owner, 'GET', `${ws}/secrets/${ids.zendesk}/versions`);
      expect(versions.body.items.map((v: { version: number }) => v.version)).toEqual([2, 1]);

      // Reveals: permitted ones are exempt for their secret only; refused ones are searched.
      for (const [role, client] of Object.entries({ owner, editor })) {
        const r = await call(
          `reveal as ${role}`,
          client,
          'POST',
          `${ws}/secrets/${ids.zendesk}/reveal`,
          {},
          {
            reveals: 'zendesk',
          },
        );
        expectStatus(r, 200, role);
      }
      expectStatus(await call('reveal restricted', owner, 'POST', `${ws}/secrets/${ids.crm}/reveal`), 403);
      expectStatus(await call('reveal as viewer', viewer, 'POST', `${ws}/secrets/${ids.zendesk}/reveal`), 403);
      expectStatus(await call('reveal as manager', manager, 'POST', `${ws}/secrets/${ids.zendesk}/reveal`), 403);

      // Lifecycle: delete, the refusals on a deleted secret, restore, purge.
      expectStatus(await call('delete', owner, 'DELETE', `${ws}/secrets/${ids.zendesk}`), 204);
      expectStatus(await call('reveal deleted', editor, 'POST', `${ws}/secrets/${ids.zendesk}/reveal`), 409);
      expectStatus(
        await call('update deleted', owner, 'PATCH', `${ws}/secrets/${ids.zendesk}`, { value: rejected }),
        409,
      );
      await call('list deleted', owner, 'GET', `${ws}/secrets?deleted=true`);
      expectStatus(await call('restore', owner, 'POST', `${ws}/secrets/${ids.zendesk}/restore`), 200);
      expectStatus(await call('restore again', owner, 'POST', `${ws}/secrets/${ids.zendesk}/restore`), 409);
      expectStatus(await call('purge', owner, 'DELETE', `${ws}/secrets/${ids.purged}?purge=true`), 204);
      expectStatus(await call('get purged', owner, 'GET', `${ws}/secrets/${ids.purged}`), 404);
      await call('variables at the end', viewer, 'GET', `${ws}/variables`);
      done.add('routes');
    },
  );

  it.runIf(available)(
    'workflows, Send request and runs against an upstream that echoes every form and fails every way',
    async () => {
      const { owner, editor, viewer, operator } = team.clients;
      const echo = ups.echo.url;
      const other = ups.other.url;
      const everyForm = api('call', {
        method: 'POST',
        query: [{ key: 'key', value: '{{secret:zendesk_token}}' }],
        body: { mode: 'json', content: '{"pem":"{{secret:pem_key}}","region":"{{region}}"}' },
        capture: [
          { variable: 'echoed', path: '$.echo' },
          { variable: 'basic', path: '$.basic' },
          { variable: 'whole', path: '$' },
        ],
      });
      const sends: [string, Record<string, unknown>, number, TestClient?][] = [
        ['send json echo', everyForm, 200],
        [
          'send html echo',
          api('call', {
            method: 'POST',
            url: `${echo}/html`,
            headers: [{ key: 'X-Crm', value: '{{secret:crm_key}}' }],
            body: { mode: 'form', content: [{ key: 't', value: '{{secret:zendesk_token}}' }] },
          }),
          200,
        ],
        [
          'send text echo',
          api('call', { method: 'PUT', url: `${echo}/text`, body: { mode: 'text', content: '{{secret:pem_key}}' } }),
          200,
        ],
        ['send failing 500', { ...everyForm, url: `${echo}/fail` }, 200],
        ['send connection reset', api('call', { url: `${echo}/reset` }), 200],
        ['send timeout mid-body', api('call', { url: `${echo}/drip`, timeoutMs: 300 }), 200],
        ['send timeout', api('call', { url: `${echo}/hang`, timeoutMs: 200 }), 200],
        ['send over the size cap', api('call', { url: `${echo}/big` }), 200],
        ['send redirect carrying it', api('call', { url: `${echo}/away-carrying` }), 200],
        [
          'send redirect carrying it in base64url',
          api('call', {
            method: 'POST',
            url: `${echo}/away-b64`,
            headers: [],
            body: { mode: 'json', content: '{"t":"{{secret:zendesk_token}}"}' },
          }),
          200,
        ],
        [
          'send redirect to another host',
          { ...everyForm, url: `${echo}/away`, capture: [{ variable: 'landed', path: '$.received' }] },
          200,
        ],
        ['send closed port', api('call', { url: 'http://127.0.0.1:1/' }), 200],
        ['send to a host not allowed', api('call', { url: `${other}/x` }), 403],
        [
          'send pinned secret elsewhere',
          api('call', { url: `${other}/x`, headers: [], query: [{ key: 'k', value: '{{secret:pem_key}}' }] }),
          403,
        ],
        [
          'send smuggled reference',
          api('call', { url: `${other}/smuggle`, headers: [{ key: 'X-Who', value: '{{who}}' }] }),
          200,
        ],
        ['send as viewer', everyForm, 403, viewer],
        ['send secret in url', api('call', { url: `${echo}/{{secret:crm_key}}` }), 422],
        [
          'send two secrets in a field',
          api('call', { headers: [{ key: 'X', value: '{{secret:crm_key}}{{secret:zendesk_token}}' }] }),
          422,
        ],
      ];
      const sent: Record<string, Reply> = {};
      for (const [label, block, status, client] of sends) {
        const r = await call(label, client ?? editor, 'POST', `${ws}/blocks/send`, {
          block,
          variables: { who: '{{secret:crm_key}}' },
        });
        expectStatus(r, status, label);
        sent[label] = r;
      }
      // Each failure path was really taken.
      const code = (label: string) => sent[label]?.body.error?.code;
      expect({
        500: code('send failing 500'),
        reset: code('send connection reset'),
        drip: code('send timeout mid-body'),
        hang: code('send timeout'),
        big: code('send over the size cap'),
        carrying: code('send redirect carrying it'),
        b64: code('send redirect carrying it in base64url'),
        closed: code('send closed port'),
      }).toEqual({
        500: 'upstream_error',
        reset: 'upstream_unreachable',
        drip: 'upstream_timeout',
        hang: 'upstream_timeout',
        big: 'response_too_large',
        carrying: 'unsafe_redirect',
        b64: 'unsafe_redirect',
        closed: 'upstream_unreachable',
      });
      expect(sent['send redirect to another host']?.body.response.status).toBe(200);
      // The smuggled reference reached the other host as text, never resolved.
      expect(ups.other.received.find((r) => r.url === '/smuggle')?.headers['x-who']).toBe('{{secret:crm_key}}');
      // The echoes came back full of values and went out redacted.
      const echoed = sent['send json echo']?.text ?? '';
      for (const name of ['crm_key', 'zendesk_token', 'pem_key']) {
        expect(echoed.split(`[secret:${name}]`).length - 1, name).toBeGreaterThan(10);
      }

      // Workflows: refused saves, then a three-block run and a run through every failure.
      const refusedSaves: [string, unknown[]][] = [
        [
          'secret in set values',
          [{ id: 'call', type: 'set', assignments: [{ variable: 'x', value: '{{secret:crm_key}}' }] }],
        ],
        ['secret in capture', [api('call', { capture: [{ variable: 'x', path: '$.{{secret:crm_key}}' }] })]],
        ['secret in url', [api('call', { url: `${echo}/?k={{secret:crm_key}}` })]],
      ];
      for (const [label, blocks] of refusedSaves) {
        const r = await call(label, editor, 'POST', `${ws}/workflows`, { name: label, startBlockId: 'call', blocks });
        expectStatus(r, 422, label);
      }
      const leakRun = {
        name: 'Leak run',
        startBlockId: 'call',
        blocks: [
          { ...everyForm, name: 'Echo call', onSuccess: 'fail_call' },
          api('fail_call', {
            name: 'Fail call',
            method: 'POST',
            url: `${echo}/fail`,
            headers: [{ key: 'X-Region', value: '{{region}}' }],
            body: { mode: 'json', content: '{"pem":"{{secret:pem_key}}","note":"{{control_note}}"}' },
            capture: [{ variable: 'failure', path: '$.error' }],
            onError: 'finish',
          }),
          {
            id: 'finish',
            type: 'set',
            name: 'Set values',
            assignments: [
              { variable: 'copy', value: 'got {{echoed}}' },
              { variable: 'smuggled', value: '{{who}}' },
              { variable: 'all', value: '{{whole}}' },
              { variable: 'why', value: '{{failure}}' },
            ],
          },
        ],
      };
      const created = await call('create workflow', editor, 'POST', `${ws}/workflows`, leakRun);
      expectStatus(created, 201);
      workflows.leakRun = created.body.id;
      expectStatus(await call('save workflow', editor, 'PUT', `${ws}/workflows/${workflows.leakRun}`, leakRun), 200);
      const failures = ['reset', 'drip', 'hang', 'big', 'away-carrying', 'away', 'closed', 'fail'];
      const chain = failures.map((f, i) =>
        api(f, {
          name: `Fails: ${f}`,
          url: f === 'closed' ? 'http://127.0.0.1:1/' : `${echo}/${f}`,
          timeoutMs: f === 'drip' || f === 'hang' ? 250 : 10_000,
          onError: failures[i + 1] ?? null,
          onSuccess: failures[i + 1] ?? null,
        }),
      );
      const failing = await call('create failing workflow', editor, 'POST', `${ws}/workflows`, {
        name: 'Leak failures',
        startBlockId: 'reset',
        blocks: chain,
      });
      expectStatus(failing, 201);
      workflows.failures = failing.body.id;
      const throwaway = await call('create throwaway', editor, 'POST', `${ws}/workflows`, {
        name: 'Throwaway',
        startBlockId: 'call',
        blocks: [api('call')],
      });
      expectStatus(await call('delete throwaway', editor, 'DELETE', `${ws}/workflows/${throwaway.body.id}`), 204);

      const run = await call('run', operator, 'POST', `${ws}/workflows/${workflows.leakRun}/runs`, {
        variables: { who: '{{secret:crm_key}}' },
      });
      expectStatus(run, 201);
      expect(run.body.steps.map((s: { blockId: string; status: string }) => `${s.blockId}:${s.status}`)).toEqual([
        'call:succeeded',
        'fail_call:failed',
        'finish:succeeded',
      ]);
      expect(run.body.variables.copy).toBe('got [secret:crm_key]');
      expect(run.body.variables.smuggled).toBe('{{secret:crm_key}}');
      const failed = await call('failing run', operator, 'POST', `${ws}/workflows/${workflows.failures}/runs`, {});
      expectStatus(failed, 201);
      expect(failed.body.status).toBe('failed');
      expect(failed.body.steps.map((s: { error?: { code: string } }) => s.error?.code ?? 'ok')).toEqual([
        'upstream_unreachable',
        'upstream_timeout',
        'upstream_timeout',
        'response_too_large',
        'unsafe_redirect',
        'ok',
        'upstream_unreachable',
        'upstream_error',
      ]);
      runIds.push(run.body.id, failed.body.id);

      // Reading it all back, as the UI and an auditor would.
      for (const id of runIds) await call(`get run ${id}`, viewer, 'GET', `${ws}/runs/${id}`);
      for (const id of Object.values(workflows)) {
        await call(`list runs ${id}`, viewer, 'GET', `${ws}/workflows/${id}/runs`);
        await call(`get workflow ${id}`, viewer, 'GET', `${ws}/workflows/${id}`);
      }
      await call('list workflows', viewer, 'GET', `${ws}/workflows`);
      for (const [name, id] of Object.entries(ids)) {
        await call(`usages ${name}`, editor, 'GET', `${ws}/secrets/${id}/usages`);
        await call(`secret after use ${name}`, owner, 'GET', `${ws}/secrets/${id}`);
      }
      await call('audit list', owner, 'GET', `${ws}/audit?limit=200`);
      await call('audit verify', owner, 'GET', `${ws}/audit/verify`);

      // The values did go out, to the allowed host only.
      const wire = new LeakSearch(canaries);
      wire.scan('requests the echo upstream received', JSON.stringify(ups.echo.received));
      expect(new Set(wire.hits.map((h) => h.canary))).toEqual(
        new Set(['crm', 'zendeskV1', 'zendesk', 'pem', 'pemLine1', 'pemLine2', 'purged']),
      );
      done.add('workflows');
    },
    60_000,
  );

  /**
   * The browser part runs on both databases: it is cheap, and although the
   * UI only ever sees HTTP (whose every response is searched on both
   * databases above), the pages read back what each database stored.
   */
  it.runIf(available && browserOk)(
    'the UI in Chromium: Variables panel, reveal and let it close, editor and Send request, runs, audit log',
    async () => {
      const b = browser as Browser;
      const logs: NetworkLog[] = [];
      const consoleLines: string[] = [];
      const snapshotDom = async (page: Page, step: string) => {
        for (const { where, text } of await domTexts(page)) ledger.add(`dom:${step} ${where}`, text);
      };

      // 1. Reveal a masked secret, with a fake clock, and let it close by itself.
      {
        const { context, page, network } = await openPage(b, world.baseUrl);
        logs.push(network);
        page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
        await page.clock.install();
        await signIn(page, OWNER);
        const row = secretRow(page, 'zendesk_token');
        const shown = row.getByText(canaries.zendesk, { exact: true });
        await row.getByRole('button', { name: 'Reveal value' }).click();
        await shown.waitFor();
        // While shown, the DOM search finds it: its silence elsewhere means something.
        const whileShown = new LeakSearch({ zendesk: canaries.zendesk });
        for (const { where, text } of await domTexts(page)) whileShown.scan(where, text);
        expect(whileShown.hits.length).toBeGreaterThan(0);
        await page.clock.fastForward(21_000);
        await shown.waitFor({ state: 'detached' });
        await row.getByRole('button', { name: 'Reveal value' }).waitFor();
        await snapshotDom(page, 'variables after the reveal closed');
        // The edit panel of the masked secret: no value in it.
        await row.getByRole('button', { name: 'Edit' }).click();
        const panel = page.getByRole('dialog', { name: 'Edit secret zendesk_token' });
        await panel.waitFor();
        expect(await panel.getByLabel('Value', { exact: true }).inputValue()).toBe('');
        await snapshotDom(page, 'edit panel open');
        await page.keyboard.press('Escape');
        await panel.waitFor({ state: 'hidden' });
        await context.close();
      }

      // 2. The rest, on a real clock.
      const { context, page, network } = await openPage(b, world.baseUrl);
      logs.push(network);
      page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
      await signIn(page, OWNER);
      await secretRow(page, 'crm_key').waitFor();
      await page.getByRole('rowheader', { name: 'control_note' }).waitFor();
      await snapshotDom(page, 'variables panel');

      await goTo(page, 'Workflows');
      await page.getByRole('link', { name: 'Leak run' }).click();
      await page.getByRole('heading', { level: 1, name: 'Leak run' }).waitFor();
      const response = page.getByRole('region', { name: 'Response' });
      await page.getByRole('button', { name: 'Send request' }).click();
      await response.getByRole('heading', { name: /^Status 200/ }).waitFor();
      await snapshotDom(page, 'editor after Send request (echo)');
      await page
        .getByRole('complementary', { name: 'Blocks' })
        .getByRole('button', { name: /Fail call/ })
        .click();
      await page.getByRole('button', { name: 'Send request' }).click();
      await response.getByRole('heading', { name: /^Status 500/ }).waitFor();
      await snapshotDom(page, 'editor after Send request (500)');
      await page.getByRole('button', { name: 'Save workflow' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();

      await goTo(page, 'Runs');
      await page.getByLabel('Workflow').selectOption({ label: 'Leak run' });
      await page.getByRole('button', { name: runIds[0] as string }).waitFor();
      await page.getByRole('button', { name: 'Run now' }).click();
      const detail = page.getByRole('region', { name: 'Run detail' });
      await detail.waitFor();
      await snapshotDom(page, 'run detail (run now)');
      await page.getByRole('button', { name: runIds[0] as string }).click();
      await detail.getByRole('heading', { name: `Run ${runIds[0]}` }).waitFor();
      await snapshotDom(page, 'run detail (API run)');
      await page.getByLabel('Workflow').selectOption({ label: 'Leak failures' });
      await page.getByRole('button', { name: runIds[1] as string }).click();
      await detail.getByRole('heading', { name: `Run ${runIds[1]}` }).waitFor();
      await detail
        .getByText(/unsafe_redirect/)
        .first()
        .waitFor();
      await snapshotDom(page, 'run detail (failures)');

      await goTo(page, 'Audit log');
      await page.getByRole('table').getByRole('cell', { name: 'secret.revealed', exact: true }).first().waitFor();
      await snapshotDom(page, 'audit log');
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('link', { name: 'Export CSV' }).click(),
      ]);
      const csv = readFileSync(await download.path());
      expect(csv.toString('utf8')).toContain('secret.revealed');
      ledger.add('audit-export:browser download of audit.csv', csv);
      await context.close();

      ledger.add('browser-console:every page', consoleLines.join('\n'));
      let revealsSeen = 0;
      let sendsSeen = 0;
      for (const log of logs) {
        const recorded = await log.all();
        sendsSeen += recorded.filter((r) => apiPath(r.url)?.endsWith('/blocks/send') && r.status === 200).length;
        // The CSV was a download: its body is the file searched above.
        expect(unreadBodies(recorded).filter((u) => !u.includes('/audit.csv'))).toEqual([]);
        for (const r of recorded) {
          const label = `browser-net:${r.method} ${r.url} ${r.status}`;
          ledger.add(`${label} headers`, JSON.stringify(r.headers));
          if (!r.body) continue;
          if (isRevealResponse(r) && r.status === 200) {
            revealsSeen += 1;
            revealed.push({ label, body: r.body.toString('utf8'), value: canaries.zendesk });
            ledger.add(`${label} body`, r.body, ['zendesk']);
          } else ledger.add(`${label} body`, r.body);
        }
      }
      expect({ revealsSeen, sendsSeen }).toEqual({ revealsSeen: 1, sendsSeen: 2 });
      done.add('browser');
    },
    60_000,
  );

  it.runIf(available)(
    '`hush backup` and `hush audit export` (jsonl, csv) as processes on the same data, and the CSV route',
    async () => {
      await call('audit csv route', team.owner, 'GET', `${ws}/audit.csv`);
      const backupFile = path.join(world.scratch, 'hush.backup.gz');
      const [backup, jsonl, csv] = await Promise.all([
        runHush(['backup', backupFile], world.cliEnv),
        runHush(['audit', 'export', '--format', 'jsonl'], world.cliEnv),
        runHush(['audit', 'export', '--format', 'csv'], world.cliEnv),
      ]);
      for (const r of [backup, jsonl, csv]) expect(r.code, describeRun(r)).toBe(0);
      const gz = readFileSync(backupFile);
      const lines = gunzipSync(gz).toString('utf8');
      expect(JSON.parse(lines.slice(0, lines.indexOf('\n')))).toMatchObject({ format: 'hush-backup', database: kind });
      // The backup holds the secret versions (as ciphertext) and the runs.
      expect(lines.includes('{"t":"secret_versions"'), 'backup has secret_versions rows').toBe(true);
      expect(lines.includes(`{"t":"runs","r":{"id":"${runIds[0]}"`), 'backup has the run').toBe(true);
      ledger.add('backup:hush backup, gzip bytes', gz);
      ledger.add('backup:hush backup, JSON lines', lines);
      for (const [label, r] of Object.entries({ jsonl, csv })) {
        for (const action of ['secret.created', 'secret.updated', 'secret.revealed', 'secret.used', 'run.finished']) {
          expect(r.stdout.includes(action), `${label} export holds ${action}`).toBe(true);
        }
        ledger.add(`audit-export:hush audit export --format ${label}`, r.stdout);
      }
      for (const [label, r] of Object.entries({ backup, jsonl, csv })) {
        ledger.add(`cli:hush ${label} stdout+stderr`, `${r.stdout}\n${r.stderr}`);
      }
      done.add('cli');
    },
    60_000,
  );

  it.runIf(available)(
    'no form of any canary anywhere: responses, DOM, log, database files, runs, audit exports, backup',
    async () => {
      // Run records as stored, and what the other origin received.
      const stored = await world.t.ctx.db.selectFrom('runs').selectAll().execute();
      expect(stored.length).toBeGreaterThanOrEqual(runIds.length);
      for (const r of stored) ledger.add(`runs:stored run ${r.id}`, JSON.stringify(r));
      ledger.add('upstream-other:requests the other origin received', JSON.stringify(ups.other.received));
      expect(ups.other.received.some((r) => r.url === '/land')).toBe(true);

      // What a metrics scraper sees after all of the above.
      const metrics = await world.t.app.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.statusCode).toBe(200);
      ledger.add('metrics:GET /metrics', metrics.body);

      // The server log, at debug.
      const log = world.t.logs.join('\n');
      expect(world.t.logs.some((l) => l.includes('"level":20'))).toBe(true);
      ledger.add('log:server log at debug', log);

      // The database files.
      if (kind === 'sqlite') {
        const files = readdirSync(world.t.dataDir).filter((f) => statSync(path.join(world.t.dataDir, f)).isFile());
        for (const f of ['hush.db', 'hush.db-wal', 'hush.db-shm']) expect(files, f).toContain(f);
        for (const f of files) ledger.add(`db:${f}`, readFileSync(path.join(world.t.dataDir, f)));
      } else {
        const db = world.t.ctx.config.database;
        const url = db.kind === 'postgres' ? db.url : '';
        const dump = execFileSync('pg_dump', ['--no-owner', url], { maxBuffer: 256 * 1024 * 1024 });
        expect(dump.toString('utf8')).toContain('secret_versions');
        ledger.add('db:pg_dump', dump);
        for (const [label, content] of await postgresFiles(url, started)) ledger.add(`db:${label}`, content);
      }

      const { hits, places, bytes } = ledger.search();
      const n = Object.keys(canaries).length;
      const m = ledger.formCount;
      console.log(`leak-e2e ${kind}: ${n} canaries × ${m} forms searched over ${places} places, ${hits.length} hits`);
      console.log(
        `leak-e2e ${kind}: ${(bytes / 1024 / 1024).toFixed(1)} MiB; places by kind ${JSON.stringify(
          Object.fromEntries(
            [...new Set(ledger.places.map((p) => p.where.split(':')[0]))].map((k) => [k, ledger.count(k as string)]),
          ),
        )}`,
      );

      // Every step ran to its end, and every kind of place was really looked at.
      expect([...done].sort()).toEqual(['cli', 'routes', 'workflows', ...(browserOk ? ['browser'] : [])].sort());
      expect(ledger.count('api')).toBeGreaterThan(150);
      expect(ledger.count('db')).toBeGreaterThanOrEqual(kind === 'sqlite' ? 3 : 1);
      expect(ledger.count('backup')).toBe(2);
      expect(ledger.count('audit-export')).toBe(browserOk ? 3 : 2);
      expect(ledger.count('runs')).toBeGreaterThanOrEqual(2);
      expect(ledger.count('log')).toBe(1);
      if (browserOk) {
        expect(ledger.count('dom')).toBeGreaterThan(10);
        expect(ledger.count('browser-net')).toBeGreaterThan(20);
      }

      // Positive control 1: a form of a canary planted in any place's real content is found.
      const planted = ledger.plantedControl();
      expect(planted.missed).toEqual([]);
      expect(planted.pairs).toBe(n * m);
      // Positive control 2: a value stored in plain text on purpose is found where it went.
      const foundControl = ledger.whereFound(control);
      const kinds = new Set(foundControl.map((w) => w.split(':')[0]));
      for (const k of ['api', 'runs', 'db', 'backup', ...(browserOk ? ['dom', 'browser-net'] : [])]) {
        expect([...kinds], `control value found in ${k}`).toContain(k);
      }
      // Positive control 3: the permitted reveals carried the value, exactly once each.
      expect(revealed.length).toBe(browserOk ? 4 : 3);
      for (const r of revealed) {
        expect(JSON.parse(r.body), r.label).toEqual({ value: r.value });
        expect(r.body.split(JSON.stringify(r.value).slice(1, -1)).length - 1, r.label).toBe(1);
      }

      expect(hits).toEqual([]);
    },
    60_000,
  );
});

/**
 * PostgreSQL's own files for this database, when the server's data directory
 * is readable here (a local server): the relation files of the database after
 * a CHECKPOINT (they keep dead row versions that pg_dump does not show) and
 * the newest WAL segments (at most four) written since the test started.
 * Elsewhere: none, with a notice; pg_dump is searched either way.
 */
async function postgresFiles(url: string, since: number): Promise<[string, Buffer][]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('checkpoint');
    const { rows } = await client.query<{ dir: string; oid: string }>(
      "select current_setting('data_directory') as dir, oid::text from pg_database where datname = current_database()",
    );
    const { dir, oid } = rows[0] as { dir: string; oid: string };
    const base = path.join(dir, 'base', oid);
    if (!existsSync(base)) {
      process.stderr.write(`[leak-e2e] NOTICE: ${base} is not readable here; PostgreSQL files not searched\n`);
      return [];
    }
    const relations = readdirSync(base).map((f) => readFileSync(path.join(base, f)));
    const walDir = path.join(dir, 'pg_wal');
    // Newest first, at most four segments: other test files write WAL at the same time.
    const wal = readdirSync(walDir)
      .map((f) => path.join(walDir, f))
      .filter((f) => statSync(f).isFile() && statSync(f).mtimeMs >= since - 1000)
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)
      .slice(0, 4)
      .map((f) => readFileSync(f));
    return [
      [`postgres relation files (${relations.length})`, Buffer.concat(relations)],
      [`postgres WAL segments written during the test (${wal.length})`, Buffer.concat(wal)],
    ];
  } finally {
    await client.end();
  }
}
