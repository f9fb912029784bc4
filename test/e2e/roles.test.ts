/**
 * What each role sees in a real browser (SPEC §2, §5): an Editor sees the
 * secrets but no Create New / Edit / Delete for them, puts one in an API
 * block header with "Add secret", and "Send request" to a local upstream
 * shows `[secret:NAME]` while the upstream got the real value; a Viewer gets
 * no secret data at all — no names in the DOM, no Secrets tab, no successful
 * call to …/secrets.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiPath,
  type BrowserApp,
  browserAvailable,
  domTexts,
  goTo,
  launchBrowser,
  leaksInDom,
  leaksInNetwork,
  openPage,
  signIn,
  startBrowserApp,
  unreadBodies,
} from '../support/browser.js';
import { inviteAndJoin, setupOwner } from '../support/fixtures.js';
import type { TestClient } from '../support/harness.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const SUITE = 'Roles in the browser: editor uses secrets in API blocks, viewer sees none';
const EDITOR = 'editor@example.com';
const VIEWER = 'viewer@example.com';
const MASKED = 'zendesk_token';
const RESTRICTED = 'crm_key';
const values = { masked: 'zd_live_Q7w9ErT2yU4iO6pA8sD0', restricted: 'crm_sk_M3nB5vC7xZ9lK1jH3gF5' };

const secretRow = (page: Page, name: string) =>
  page.getByRole('row').filter({ has: page.getByRole('rowheader', { name, exact: true }) });

/** A text field's caret API (the test's TypeScript has no DOM library). */
interface Selectable {
  setSelectionRange(start: number, end: number): void;
}

const enabled = browserAvailable(SUITE);

/**
 * Clicks "Save workflow" and waits for the server's answer to that save: an
 * earlier save's "Saved" status may still be showing, so it proves nothing.
 */
async function saveWorkflow(page: Page): Promise<void> {
  const answered = page.waitForResponse(
    (r) => ['POST', 'PUT'].includes(r.request().method()) && /\/workflows(\/[^/?]+)?$/.test(new URL(r.url()).pathname),
  );
  await page.getByRole('button', { name: 'Save workflow' }).click();
  expect((await answered).status()).toBeLessThan(300);
  await page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
}

describe.runIf(enabled)(SUITE, () => {
  let browser: Browser;
  let hush: BrowserApp;
  let up: Upstream;
  let ownerClient: TestClient;
  let wsId: string;

  beforeAll(async () => {
    up = await startUpstream();
    up.handle((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ path: req.url, authorization: req.headers.authorization ?? null }));
    });
    [browser, hush] = await Promise.all([
      launchBrowser(),
      startBrowserApp({ HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' }),
    ]);
    const { owner, workspaceId } = await setupOwner(hush.t);
    ownerClient = owner;
    wsId = workspaceId;
    const ws = `/api/v1/workspaces/${workspaceId}`;
    for (const [name, visibility, value] of [
      [MASKED, 'masked', values.masked],
      [RESTRICTED, 'restricted', values.restricted],
    ] as const) {
      const res = await owner.post(`${ws}/secrets`, { name, visibility, value, description: `${name} for tests` });
      expect(res.status, res.text).toBe(201);
    }
    await inviteAndJoin(hush.t, owner, workspaceId, EDITOR, 'editor');
    await inviteAndJoin(hush.t, owner, workspaceId, VIEWER, 'viewer');
  });
  afterAll(async () => {
    await browser?.close();
    await hush?.close();
    await up?.close();
  });

  it('an editor sees the secrets with their eye and lock, but no Create New, Edit or Delete for them', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, EDITOR);
    await secretRow(page, MASKED).waitFor();
    await secretRow(page, RESTRICTED).waitFor();
    await page.getByRole('tab', { name: 'Secrets' }).click();
    expect(await page.getByRole('button', { name: 'Create New' }).count()).toBe(0);
    // Editors manage custom variables, through a button that cannot make a secret.
    expect(await page.getByRole('button', { name: 'New variable' }).count()).toBe(1);
    for (const name of [MASKED, RESTRICTED]) {
      const row = secretRow(page, name);
      expect(await row.getByRole('img', { name: 'Hidden value' }).count()).toBe(1);
      expect(await row.getByRole('button', { name: 'Edit' }).count()).toBe(0);
      expect(await row.getByRole('button', { name: 'Delete' }).count()).toBe(0);
    }
    expect(await secretRow(page, MASKED).getByRole('button', { name: 'Reveal value' }).count()).toBe(1);
    expect(await secretRow(page, RESTRICTED).getByRole('button', { name: 'Reveal value' }).count()).toBe(0);
    expect(await secretRow(page, RESTRICTED).getByRole('img', { name: 'Restricted: never revealed' }).count()).toBe(1);
    await context.close();
  });

  it('an editor adds a secret to an API block header; Send request shows [secret:NAME], the upstream got the value', async () => {
    const { context, page, network } = await openPage(browser, hush.baseUrl);
    await signIn(page, EDITOR);
    await goTo(page, 'Workflows');
    await page.getByLabel('New workflow name').fill('Ticket lookup');
    await page.getByRole('button', { name: 'Create workflow' }).click();
    await page.getByRole('heading', { level: 1, name: 'Ticket lookup' }).waitFor();

    await page.getByRole('button', { name: 'Add API block' }).click();
    await page.getByLabel('URL', { exact: true }).fill(`${up.url}/api/v2/tickets`);
    const headers = page.getByRole('group', { name: 'Headers' });
    await headers.getByRole('button', { name: 'Add header' }).click();
    await headers.getByLabel('Headers 1 name').fill('Authorization');
    await headers.getByLabel('Headers 1 value', { exact: true }).fill('Bearer ');
    await headers.getByRole('button', { name: 'Add secret' }).click();
    const listbox = page.getByRole('listbox', { name: 'Secrets' });
    // Both secrets can be used; the editor is offered no way to create or edit one.
    expect(await listbox.getByRole('option').allTextContents()).toEqual([
      expect.stringContaining(RESTRICTED),
      expect.stringContaining(MASKED),
    ]);
    expect(await page.getByRole('button', { name: /Create new secret|Edit value/ }).count()).toBe(0);
    await listbox.getByRole('option', { name: MASKED }).click();
    await listbox.waitFor({ state: 'detached' });
    await headers.getByRole('button', { name: `Remove secret ${MASKED}` }).waitFor();
    expect(await headers.getByLabel('Headers 1 value', { exact: true }).inputValue()).toBe('Bearer ');

    await page.getByRole('button', { name: 'Send request' }).click();
    const response = page.getByRole('region', { name: 'Response' });
    await response.getByRole('heading', { name: /^Status 200/ }).waitFor();
    await response.getByText(`"Bearer [secret:${MASKED}]"`).waitFor();

    const received = up.received.at(-1);
    expect(received?.url).toBe('/api/v2/tickets');
    expect(received?.headers.authorization).toBe(`Bearer ${values.masked}`);

    await saveWorkflow(page);

    expect((await leaksInDom(page, values)).hits).toEqual([]);
    const log = await network.all();
    const send = log.find((r) => r.method === 'POST' && apiPath(r.url)?.endsWith('/blocks/send'));
    expect(send?.status).toBe(200);
    expect(String(send?.body)).toContain(`Bearer [secret:${MASKED}]`);
    expect(unreadBodies(log)).toEqual([]);
    expect(leaksInNetwork(log, values).hits).toEqual([]);
    await context.close();
  });

  it('an editor adds a secret to a JSON body where the cursor is; the upstream gets it inside the JSON', async () => {
    const { context, page, network } = await openPage(browser, hush.baseUrl);
    await signIn(page, EDITOR);
    await goTo(page, 'Workflows');
    await page.getByLabel('New workflow name').fill('Refund note');
    await page.getByRole('button', { name: 'Create workflow' }).click();
    await page.getByRole('heading', { level: 1, name: 'Refund note' }).waitFor();
    await page.getByRole('button', { name: 'Add API block' }).click();
    await page.getByLabel('Method').selectOption('POST');
    await page.getByLabel('URL', { exact: true }).fill(`${up.url}/api/v2/refunds`);
    await page.getByLabel('Body', { exact: true }).selectOption('json');
    const body = page.getByLabel('JSON body');
    const addSecret = page.getByRole('button', { name: 'Add secret' });
    const listbox = page.getByRole('listbox', { name: 'Secrets' });

    // Inside a string: the reference goes in as it is, where the cursor was.
    await body.fill('{"ticket":"","note":"late"}');
    await body.evaluate((el) => (el as unknown as Selectable).setSelectionRange(11, 11));
    await addSecret.click();
    await listbox.getByRole('option', { name: MASKED }).click();
    await listbox.waitFor({ state: 'detached' });
    expect(await body.inputValue()).toBe(`{"ticket":"{{secret:${MASKED}}}","note":"late"}`);

    await page.getByRole('button', { name: 'Send request' }).click();
    const response = page.getByRole('region', { name: 'Response' });
    await response.getByRole('heading', { name: /^Status 200/ }).waitFor();
    const received = up.received.at(-1);
    expect(received?.url).toBe('/api/v2/refunds');
    expect(JSON.parse(received?.body ?? '{}')).toEqual({ ticket: values.masked, note: 'late' });

    // Outside any string: it becomes a string of its own.
    await body.fill('{"ticket":}');
    await body.evaluate((el) => (el as unknown as Selectable).setSelectionRange(10, 10));
    await addSecret.click();
    await page.keyboard.type(MASKED);
    await page.keyboard.press('Enter');
    expect(await body.inputValue()).toBe(`{"ticket":"{{secret:${MASKED}}}"}`);

    expect((await leaksInDom(page, values)).hits).toEqual([]);
    expect(leaksInNetwork(await network.all(), values).hits).toEqual([]);
    await context.close();
  });

  it('an owner edits a value from Add secret: the field keeps its secret; a secret created there goes in', async () => {
    const ws = `/api/v1/workspaces/${wsId}`;
    const versionOf = async (name: string) => {
      const list = (await ownerClient.get(`${ws}/secrets?q=${name}`)).body.items as { name: string; version: number }[];
      return list.find((s) => s.name === name)?.version;
    };
    const before = await versionOf(RESTRICTED);
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, 'owner@example.com');
    await goTo(page, 'Workflows');
    await page.getByLabel('New workflow name').fill('Picker edits');
    await page.getByRole('button', { name: 'Create workflow' }).click();
    await page.getByRole('heading', { level: 1, name: 'Picker edits' }).waitFor();
    await page.getByRole('button', { name: 'Add API block' }).click();
    const headers = page.getByRole('group', { name: 'Headers' });
    await headers.getByRole('button', { name: 'Add header' }).click();
    await headers.getByRole('button', { name: 'Add secret' }).click();
    const listbox = page.getByRole('listbox', { name: 'Secrets' });
    await listbox.getByRole('option', { name: MASKED }).click();
    await headers.getByRole('button', { name: `Remove secret ${MASKED}` }).waitFor();

    // Editing another secret's value from the picker saves a new version and leaves the field alone.
    await headers.getByRole('button', { name: 'Add secret' }).click();
    await page.getByRole('button', { name: `Edit value of ${RESTRICTED}` }).click();
    const panel = page.getByRole('dialog', { name: `Edit secret ${RESTRICTED}` });
    await panel.getByLabel('Value', { exact: true }).fill('crm_sk_rotated_value_0123456789');
    await panel.getByRole('button', { name: 'Save' }).click();
    await panel.waitFor({ state: 'hidden' });
    await expect.poll(() => versionOf(RESTRICTED)).toBe((before ?? 0) + 1);
    await listbox.waitFor({ state: 'detached' });
    await headers.getByRole('button', { name: `Remove secret ${MASKED}` }).waitFor();
    expect(await headers.getByRole('button', { name: `Remove secret ${RESTRICTED}` }).count()).toBe(0);

    // A secret created from the picker is what the field then holds.
    await headers.getByRole('button', { name: 'Add secret' }).click();
    await page.keyboard.type('picker_new');
    await page.getByRole('button', { name: 'Create new secret "picker_new"' }).click();
    const created = page.getByRole('dialog', { name: 'New secret' });
    await created.getByLabel('Value', { exact: true }).fill('picker-new-value-0123456789');
    await created.getByRole('button', { name: 'Save' }).click();
    await created.waitFor({ state: 'hidden' });
    await headers.getByRole('button', { name: 'Remove secret picker_new' }).waitFor();
    expect(await headers.getByRole('button', { name: `Remove secret ${MASKED}` }).count()).toBe(0);
    await context.close();
  });

  it('a viewer sees no secret: no names in the DOM, no Secrets tab, no successful call to …/secrets', async () => {
    const { context, page, network } = await openPage(browser, hush.baseUrl);
    await signIn(page, VIEWER);
    await page.getByRole('rowheader', { name: '$run_id' }).waitFor();
    await page.getByRole('tab', { name: 'All' }).waitFor();
    expect(await page.getByRole('tab', { name: 'Secrets' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /Create New|New variable/ }).count()).toBe(0);
    expect(await page.getByRole('img', { name: 'Hidden value' }).count()).toBe(0);
    await page.getByRole('tab', { name: 'Custom' }).click();
    await page.getByRole('tab', { name: 'All' }).click();
    await goTo(page, 'Workflows');
    await page.getByRole('link', { name: 'Ticket lookup' }).waitFor();
    await goTo(page, 'Variables');
    await page.getByRole('rowheader', { name: '$run_id' }).waitFor();

    for (const { where, text } of await domTexts(page)) {
      expect(text, where).not.toContain(MASKED);
      expect(text, where).not.toContain(RESTRICTED);
    }
    const log = await network.all();
    const secretCalls = log.filter((r) => /\/secrets(\/|\?|$)/.test(apiPath(r.url) ?? ''));
    expect(secretCalls.filter((r) => r.status < 400).map((r) => `${r.method} ${r.url} ${r.status}`)).toEqual([]);
    // The recorder did see the page's other calls.
    expect(log.some((r) => apiPath(r.url)?.endsWith('/variables') ?? false)).toBe(true);
    expect(leaksInNetwork(log, values).hits).toEqual([]);
    await context.close();
  });

  it('past one page of secrets: the panel loads more, and the picker finds a secret by asking the server', async () => {
    const ws = `/api/v1/workspaces/${wsId}`;
    for (let i = 0; i < 205; i++) {
      const res = await ownerClient.post(`${ws}/secrets`, {
        name: `bulk_${String(i).padStart(3, '0')}`,
        visibility: 'masked',
        value: `bulk-value-${i}-0123456789`,
      });
      expect(res.status, res.text).toBe(201);
    }
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, EDITOR);
    await page.getByRole('tab', { name: 'Secrets' }).click();
    await secretRow(page, 'bulk_000').waitFor();
    // Names sort before zendesk_token/crm_key? "bulk_" < "crm_key" < "zendesk_token": the first page ends inside bulk_*.
    expect(await secretRow(page, MASKED).count()).toBe(0);
    await page.getByRole('button', { name: 'Load more' }).click();
    await secretRow(page, MASKED).waitFor();
    await secretRow(page, 'bulk_204').waitFor();
    expect(await page.getByRole('button', { name: 'Load more' }).count()).toBe(0);

    await goTo(page, 'Workflows');
    await page.getByLabel('New workflow name').fill('Many secrets');
    await page.getByRole('button', { name: 'Create workflow' }).click();
    await page.getByRole('heading', { level: 1, name: 'Many secrets' }).waitFor();
    await page.getByRole('button', { name: 'Add API block' }).click();
    const headers = page.getByRole('group', { name: 'Headers' });
    await headers.getByRole('button', { name: 'Add header' }).click();
    await headers.getByRole('button', { name: 'Add secret' }).click();
    const listbox = page.getByRole('listbox', { name: 'Secrets' });
    // The editor loaded the first page only: zendesk_token is not among the options until searched for.
    expect(await listbox.getByRole('option', { name: MASKED }).count()).toBe(0);
    await page.keyboard.type('zendesk');
    await listbox.getByRole('option', { name: MASKED }).waitFor();
    await page.keyboard.press('Enter');
    await headers.getByRole('button', { name: `Remove secret ${MASKED}` }).waitFor();
    await context.close();
  });

  it('an editor renames a workflow, moves its start, edits capture rules, removes a block and deletes it', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, EDITOR);
    await goTo(page, 'Workflows');
    await page.getByLabel('New workflow name').fill('Editor tools');
    await page.getByRole('button', { name: 'Create workflow' }).click();
    await page.getByRole('heading', { level: 1, name: 'Editor tools' }).waitFor();
    await page.getByRole('button', { name: 'Add API block' }).click();
    await page.getByRole('button', { name: 'Add Set Values block' }).click();
    const blocks = page.getByRole('complementary', { name: 'Blocks' });

    // The Set Values block (selected, as just added) becomes the start.
    await page.getByRole('button', { name: 'Start here' }).click();
    await page.getByText('The workflow starts here.').waitFor();
    expect(await blocks.getByRole('button', { name: /Set values/ }).textContent()).toContain('start');
    expect(await blocks.getByRole('button', { name: /API call/ }).textContent()).not.toContain('start');

    // Capture rules by hand: add two, remove the first.
    await blocks.getByRole('button', { name: /API call/ }).click();
    await page.getByRole('button', { name: 'Add capture rule' }).click();
    await page.getByLabel('Capture 1 variable').fill('first');
    await page.getByLabel('Capture 1 path').fill('$.a');
    await page.getByRole('button', { name: 'Add capture rule' }).click();
    await page.getByLabel('Capture 2 variable').fill('second');
    await page.getByLabel('Capture 2 path').fill('$.b');
    await page.getByRole('button', { name: 'Remove capture 1' }).click();
    expect(await page.getByLabel('Capture 1 variable').inputValue()).toBe('second');
    expect(await page.getByLabel('Capture 2 variable').count()).toBe(0);

    await page.getByLabel('Workflow name').fill('Editor tools v2');
    await page.getByLabel('URL', { exact: true }).fill(`${up.url}/x`);
    await saveWorkflow(page);
    const ws = `/api/v1/workspaces/${wsId}`;
    const list = (await ownerClient.get(`${ws}/workflows?limit=200`)).body.items as { id: string; name: string }[];
    const id = list.find((w) => w.name === 'Editor tools v2')?.id;
    expect(id).toBeDefined();
    let saved = (await ownerClient.get(`${ws}/workflows/${id}`)).body;
    const setBlock = saved.blocks.find((b: { type: string }) => b.type === 'set');
    const apiBlock = saved.blocks.find((b: { type: string }) => b.type === 'api');
    expect(saved.startBlockId).toBe(setBlock.id);
    expect(apiBlock.capture).toEqual([{ variable: 'second', path: '$.b' }]);

    // Removing the start block moves the start to the block left.
    await blocks.getByRole('button', { name: /Set values/ }).click();
    await page.getByRole('button', { name: 'Remove block' }).click();
    expect(await blocks.getByRole('button').count()).toBeGreaterThanOrEqual(1);
    await saveWorkflow(page);
    saved = (await ownerClient.get(`${ws}/workflows/${id}`)).body;
    expect(saved.blocks.map((b: { id: string }) => b.id)).toEqual([apiBlock.id]);
    expect(saved.startBlockId).toBe(apiBlock.id);

    // Delete, behind a confirmation.
    await page.getByRole('button', { name: 'Delete workflow' }).click();
    const modal = page.getByRole('dialog', { name: 'Delete workflow' });
    await modal.getByRole('button', { name: 'Cancel' }).click();
    await modal.waitFor({ state: 'hidden' });
    expect((await ownerClient.get(`${ws}/workflows/${id}`)).status).toBe(200);
    await page.getByRole('button', { name: 'Delete workflow' }).click();
    await modal.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Workflows' }).waitFor();
    expect((await ownerClient.get(`${ws}/workflows/${id}`)).status).toBe(404);
    await context.close();
  });
});
