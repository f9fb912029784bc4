/**
 * A run's detail in a real browser reads as an exchange, not a JSON dump: the
 * request line and headers sent, the status and the body received (JSON
 * indented), what a step captured or set, the variables at the end as a
 * table, and a failed step's error in words — all redacted. The Send
 * request viewer's JSON tree shows numbers as the service wrote them, and a
 * click on any key makes a capture path the API reads back.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrowserApp,
  browserAvailable,
  goTo,
  launchBrowser,
  openPage,
  signIn,
  startBrowserApp,
} from '../support/browser.js';
import { apiBlock, setupOwner } from '../support/fixtures.js';
import { PASSWORD } from '../support/harness.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const SUITE = "A run's detail and the Send request viewer";
const OWNER = 'owner@example.com';
const VALUE = 'run-detail-secret-value-7f3a9c';
const EXACT = '{"id":12345678901234567890,"price":1.10,"tags":[],"at":{"x":1e3}}';
/** Keys a capture path must quote and escape, around numbers JavaScript would rewrite. */
const ODD_KEYS = '{"id":9007199254740993,"it\'s":{"a\\\\b":[1.50]}}';

const enabled = browserAvailable(SUITE);

describe.runIf(enabled)(SUITE, () => {
  let browser: Browser;
  let hush: BrowserApp;
  let up: Upstream;
  let workspaceId: string;

  beforeAll(async () => {
    up = await startUpstream();
    // Echoes the credential it was sent, in JSON.
    up.handle((req, res) => {
      res.setHeader('content-type', 'application/json');
      // Numbers a JavaScript number cannot hold as written (an id past 2^53, a price's trailing zero).
      if (req.url === '/exact') return void res.end(EXACT);
      if (req.url === '/odd-keys') return void res.end(ODD_KEYS);
      res.setHeader('x-echo', String(req.headers.authorization ?? ''));
      res.end(JSON.stringify({ ticket: { id: 4242 }, saw: String(req.headers.authorization ?? '') }));
    });
    [browser, hush] = await Promise.all([
      launchBrowser(),
      startBrowserApp({ HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' }),
    ]);
    ({ workspaceId } = await setupOwner(hush.t, OWNER));
  });
  afterAll(async () => {
    await browser?.close();
    await hush?.close();
    await up?.close();
  });

  it('shows the exchange, what was captured and set, and the end variables — redacted, no JSON dump', async () => {
    const owner = hush.t.client();
    expect((await owner.post('/api/v1/auth/login', { email: OWNER, password: PASSWORD })).status).toBe(200);
    const ws = `/api/v1/workspaces/${workspaceId}`;
    const secret = await owner.post(`${ws}/secrets`, {
      name: 'ticket_token',
      visibility: 'masked',
      value: VALUE,
      allowedHosts: ['127.0.0.1'],
    });
    expect(secret.status, secret.text).toBe(201);
    const wf = await owner.post(`${ws}/workflows`, {
      name: 'Ticket lookup',
      startBlockId: 'find',
      blocks: [
        apiBlock('find', `${up.url}/tickets/1`, {
          name: 'Find ticket',
          headers: [{ key: 'Authorization', value: 'Bearer {{secret:ticket_token}}' }],
          capture: [{ variable: 'ticket_id', path: '$.ticket.id' }],
          onSuccess: 'note',
        }),
        {
          id: 'note',
          type: 'set',
          name: 'Note',
          assignments: [{ variable: 'note', value: 'found {{ticket_id}}' }],
          onSuccess: 'down',
        },
        // Refused by the SSRF guard (not in the allowed ranges): the step fails.
        apiBlock('down', 'http://10.255.255.1/notify', { name: 'Notify' }),
      ],
    });
    expect(wf.status, wf.text).toBe(201);

    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'Runs');
    await page.getByRole('button', { name: 'Run now' }).click();
    const detail = page.getByRole('region', { name: 'Run detail' });
    await detail.waitFor();
    const steps = detail.locator(':scope > details');
    await expect.poll(() => steps.count()).toBe(3);
    for (let i = 0; i < 3; i++) {
      // A failed step is open already; the others open on a click.
      if ((await steps.nth(i).getAttribute('open')) === null) await steps.nth(i).locator(':scope > summary').click();
    }

    const first = steps.nth(0);
    const sent = await first.locator('.exchange-part', { hasText: 'Request sent' }).locator('pre').textContent();
    expect(sent).toBe(`GET ${up.url}/tickets/1\nauthorization: Bearer [secret:ticket_token]`);
    await first.getByRole('heading', { name: 'Response: status 200' }).waitFor();
    const body = await first.locator('pre.body').textContent();
    expect(body).toBe(JSON.stringify({ ticket: { id: 4242 }, saw: 'Bearer [secret:ticket_token]' }, null, 2));
    const captured = first.getByRole('table', { name: 'Captured' });
    expect(await captured.getByRole('row').allTextContents()).toEqual(['VariableValue', 'ticket_id4242']);

    const set = steps.nth(1).getByRole('table', { name: 'Values set' });
    expect(await set.getByRole('row').allTextContents()).toEqual(['VariableValue', 'notefound 4242']);

    const failed = steps.nth(2);
    const error = await failed.locator('p.error').textContent();
    expect(error).toMatch(/\(outbound_blocked\)$/);
    expect(error).not.toMatch(/^\s*\{/);

    const end = detail.getByRole('table', { name: 'Variables at the end' });
    const rows = await end.getByRole('row').allTextContents();
    expect(rows).toContain('ticket_id4242');
    expect(rows).toContain('notefound 4242');

    const text = (await detail.textContent()) ?? '';
    expect(text).not.toContain(VALUE);
    expect(text, 'no JSON dump of the step').not.toContain('"request"');

    // The audit log says what the run came to in words too, not as a JSON object.
    await goTo(page, 'Audit log');
    const finished = page
      .getByRole('row')
      .filter({ has: page.getByRole('cell', { name: 'run.finished', exact: true }) });
    const details = await finished.first().locator('td.details').textContent();
    expect(details).toBe(`workflowId: ${wf.body.id} · status: failed · steps: 3`);
    // A role in an event is shown by its name, as everywhere else in the UI.
    const invited = await owner.post(`${ws}/invitations`, { email: 'new@example.com', role: 'editor' });
    expect(invited.status, invited.text).toBe(201);
    await page.reload();
    const invitation = page
      .getByRole('row')
      .filter({ has: page.getByRole('cell', { name: 'invitation.created', exact: true }) });
    expect(await invitation.first().locator('td.details').textContent()).toMatch(
      /^email: new@example\.com · role: Editor · expiresAt: /,
    );
    await context.close();
  });

  it('indents a JSON body as received: no number rounded or rewritten', async () => {
    const owner = hush.t.client();
    expect((await owner.post('/api/v1/auth/login', { email: OWNER, password: PASSWORD })).status).toBe(200);
    const ws = `/api/v1/workspaces/${workspaceId}`;
    const wf = await owner.post(`${ws}/workflows`, {
      name: 'Exact numbers',
      startBlockId: 'get',
      blocks: [apiBlock('get', `${up.url}/exact`, { name: 'Get' })],
    });
    expect(wf.status, wf.text).toBe(201);
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'Runs');
    await page.getByRole('combobox', { name: 'Workflow' }).selectOption({ label: 'Exact numbers' });
    await page.getByRole('button', { name: 'Run now' }).click();
    const detail = page.getByRole('region', { name: 'Run detail' });
    const step = detail.locator(':scope > details').first();
    await step.waitFor();
    await step.locator(':scope > summary').click();
    expect(await step.locator('pre.body').textContent()).toBe(
      '{\n  "id": 12345678901234567890,\n  "price": 1.10,\n  "tags": [],\n  "at": {\n    "x": 1e3\n  }\n}',
    );
    await context.close();
  });

  it("Send request's JSON tree shows numbers as written; a click on a quoted key captures through the API", async () => {
    expect(JSON.parse(ODD_KEYS)["it's"]).toEqual({ 'a\\b': [1.5] });
    const owner = hush.t.client();
    expect((await owner.post('/api/v1/auth/login', { email: OWNER, password: PASSWORD })).status).toBe(200);
    const ws = `/api/v1/workspaces/${workspaceId}`;
    const wf = await owner.post(`${ws}/workflows`, {
      name: 'Odd keys',
      startBlockId: 'get',
      blocks: [apiBlock('get', `${up.url}/odd-keys`, { name: 'Get' })],
    });
    expect(wf.status, wf.text).toBe(201);
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'Workflows');
    await page.getByRole('link', { name: 'Odd keys' }).click();
    await page.getByRole('heading', { level: 1, name: 'Odd keys' }).waitFor();
    await page.getByRole('button', { name: 'Send request' }).click();
    const response = page.getByRole('region', { name: 'Response' });
    await response.getByRole('heading', { name: /^Status 200/ }).waitFor();
    const leaves = await response.locator('.json-tree code').allTextContents();
    expect(leaves).toEqual([': 9007199254740993', ': 1.50']);

    await response.getByRole('button', { name: 'a\\b' }).click();
    const path = page.getByLabel('Capture 1 path');
    expect(await path.inputValue()).toBe("$['it\\'s']['a\\\\b']");
    // The API reads the path back: the next Send captures through it.
    await page.getByRole('button', { name: 'Send request' }).click();
    await response.getByText('"captured_1": [').waitFor();
    expect(await response.locator('pre', { hasText: 'Captured:' }).textContent()).toBe(
      `Captured: ${JSON.stringify({ captured_1: [1.5] }, null, 2)}`,
    );
    await context.close();
  });
});
