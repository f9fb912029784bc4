/**
 * Two people editing one workflow in real browsers: the list shows block
 * counts from summaries (its answer holds no blocks); each editor saves with
 * If-Match, the revision it loaded, so the second save from the same copy is
 * refused with a clear "someone else saved this workflow" and "Reload
 * workflow" — the first editor's blocks stay — and after a reload the second
 * editor's save goes through.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_TIMEOUT_MS } from '../../src/modules/workflows/block-schema.js';
import {
  apiPath,
  type BrowserApp,
  browserAvailable,
  goTo,
  launchBrowser,
  openPage,
  signIn,
  startBrowserApp,
} from '../support/browser.js';
import { apiBlock, inviteAndJoin, setupOwner } from '../support/fixtures.js';
import type { TestClient } from '../support/harness.js';

const SUITE = 'Two editors on one workflow: a save from a stale copy is refused, not applied';
const OWNER = 'owner@example.com';
const EDITOR = 'editor@example.com';
const NAME = 'Shared flow';

const enabled = browserAvailable(SUITE);

/** Clicks "Save workflow" and returns the request's If-Match and the answer's status. */
async function save(page: Page): Promise<{ ifMatch: string | undefined; status: number }> {
  const answered = page.waitForResponse(
    (r) => r.request().method() === 'PUT' && /\/workflows\/[^/?]+$/.test(new URL(r.url()).pathname),
  );
  await page.getByRole('button', { name: 'Save workflow' }).click();
  const response = await answered;
  return { ifMatch: response.request().headers()['if-match'], status: response.status() };
}

async function openWorkflow(page: Page): Promise<void> {
  await goTo(page, 'Workflows');
  await page.getByRole('link', { name: NAME }).click();
  await page.getByRole('heading', { level: 1, name: NAME }).waitFor();
}

const blockButtons = (page: Page) => page.getByRole('complementary', { name: 'Blocks' }).getByRole('button');

describe.runIf(enabled)(SUITE, () => {
  let browser: Browser;
  let hush: BrowserApp;
  let owner: TestClient;
  let url: string;
  let ws: string;
  let editorId: string;

  beforeAll(async () => {
    [browser, hush] = await Promise.all([launchBrowser(), startBrowserApp()]);
    const setup = await setupOwner(hush.t, OWNER);
    owner = setup.owner;
    editorId = (await inviteAndJoin(hush.t, owner, setup.workspaceId, EDITOR, 'editor')).userId;
    ws = `/api/v1/workspaces/${setup.workspaceId}`;
    const created = await owner.post(`${ws}/workflows`, {
      name: NAME,
      startBlockId: 'first',
      blocks: [
        { id: 'first', type: 'set', name: 'First', assignments: [{ variable: 'a', value: '1' }], onSuccess: 'second' },
        { id: 'second', type: 'set', name: 'Second', assignments: [], onSuccess: null },
      ],
    });
    expect(created.status, created.text).toBe(201);
    url = `${ws}/workflows/${created.body.id}`;
  });
  afterAll(async () => {
    await browser?.close();
    await hush?.close();
  });

  it('the list shows each workflow with its block count, from an answer that holds no blocks', async () => {
    const { context, page, network } = await openPage(browser, hush.baseUrl);
    await signIn(page, EDITOR);
    await goTo(page, 'Workflows');
    const item = page.getByRole('listitem').filter({ has: page.getByRole('link', { name: NAME }) });
    await item.getByText('2 blocks').waitFor();
    const lists = (await network.all()).filter((r) => /^\/workspaces\/[^/]+\/workflows$/.test(apiPath(r.url) ?? ''));
    expect(lists.length).toBeGreaterThan(0);
    for (const list of lists) {
      const body = String(list.body);
      expect(body).toContain('"blockCount":2');
      expect(body).not.toContain('"blocks"');
      expect(body).not.toContain('"assignments"');
    }
    await context.close();
  });

  it('a save from a stale copy shows "someone else saved this workflow"; after Reload the save goes through', async () => {
    const a = await openPage(browser, hush.baseUrl);
    const b = await openPage(browser, hush.baseUrl);
    await signIn(a.page, OWNER);
    await signIn(b.page, EDITOR);
    await openWorkflow(a.page);
    await openWorkflow(b.page);

    // A adds a block and saves first.
    await a.page.getByRole('button', { name: 'Add Set Values block' }).click();
    await a.page.getByLabel('Block name').fill('From A');
    const first = await save(a.page);
    expect(first).toEqual({ ifMatch: '"0"', status: 200 });
    await a.page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();

    // B, still on the copy it opened, renames a block and saves: refused, nothing changed.
    await b.page.getByRole('button', { name: /Second/ }).click();
    await b.page.getByLabel('Block name').fill('Second by B');
    const second = await save(b.page);
    expect(second).toEqual({ ifMatch: '"0"', status: 412 });
    const alert = b.page.getByRole('alert').filter({ hasText: 'Someone else saved this workflow' });
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/Reload/);
    const stored = await owner.get(url);
    expect(stored.body.revision).toBe(1);
    expect(stored.body.blocks.map((x: { name: string }) => x.name)).toEqual(['First', 'Second', 'From A']);

    // Reload shows A's block; B's change made again now saves over revision 1.
    await alert.getByRole('button', { name: 'Reload workflow' }).click();
    await blockButtons(b.page).filter({ hasText: 'From A' }).waitFor();
    expect(await b.page.getByRole('alert').count()).toBe(0);
    await b.page.getByRole('button', { name: /Second/ }).click();
    await b.page.getByLabel('Block name').fill('Second by B');
    const retried = await save(b.page);
    expect(retried).toEqual({ ifMatch: '"1"', status: 200 });
    await b.page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
    const after = await owner.get(url);
    expect(after.body.revision).toBe(2);
    expect(after.body.blocks.map((x: { name: string }) => x.name)).toEqual(['First', 'Second by B', 'From A']);

    // A's copy is now the stale one: its next save is refused in turn.
    await a.page.getByLabel('Workflow name').fill('Renamed by A');
    expect((await save(a.page)).status).toBe(412);
    await a.page.getByRole('alert').filter({ hasText: 'Someone else saved this workflow' }).waitFor();
    expect((await owner.get(url)).body.name).toBe(NAME);
    await a.context.close();
    await b.context.close();
  });

  it('Send request and Save say what is wrong at the field, in words: a timeout out of range, a URL the API refuses', async () => {
    const created = await owner.post(`${ws}/workflows`, {
      name: 'Checked flow',
      startBlockId: 'call',
      blocks: [apiBlock('call', 'https://api.example.com/v2/tickets', { name: 'Call' })],
    });
    expect(created.status, created.text).toBe(201);
    const stored = `${ws}/workflows/${created.body.id}`;
    const { context, page, network } = await openPage(browser, hush.baseUrl);
    await signIn(page, EDITOR);
    await goTo(page, 'Workflows');
    await page.getByRole('link', { name: 'Checked flow' }).click();
    await page.getByRole('heading', { level: 1, name: 'Checked flow' }).waitFor();

    const field = (label: string) => page.locator('.field').filter({ has: page.getByLabel(label, { exact: true }) });
    const messageAt = (label: string) => field(label).getByRole('alert');
    const alerts = () => page.getByRole('alert').allTextContents();
    const timeout = page.getByLabel('Timeout (ms)');
    const address = page.getByLabel('URL', { exact: true });
    const send = page.getByRole('button', { name: 'Send request' });
    const inWords = `A whole number of milliseconds, from 1 to ${MAX_TIMEOUT_MS} (${MAX_TIMEOUT_MS / 1000} seconds).`;

    // Out of range, then letters: said at the field by the browser; the field keeps what was typed.
    for (const typed of [String(MAX_TIMEOUT_MS + 1), '999999', '0', 'ten seconds', '1.5']) {
      await timeout.fill(typed);
      await send.click();
      await messageAt('Timeout (ms)').waitFor();
      expect(await messageAt('Timeout (ms)').textContent()).toBe(inWords);
      expect(await timeout.inputValue()).toBe(typed);
      expect(await timeout.getAttribute('aria-invalid')).toBe('true');
      for (const text of await alerts()) expect(text).not.toMatch(/block\.|timeoutMs|expected number/);
    }
    // Correcting the field takes its message away.
    await timeout.fill(String(MAX_TIMEOUT_MS));
    expect(await messageAt('Timeout (ms)').count()).toBe(0);

    // A URL that is no address: said at the URL field.
    await address.fill('not a url');
    await send.click();
    await messageAt('URL').waitFor();
    expect(await messageAt('URL').textContent()).toMatch(
      /^Not a complete address: it starts with http:\/\/ or https:\/\//,
    );
    const sends = async () =>
      (await network.all()).filter((r) => /\/blocks\/send$/.test(apiPath(r.url) ?? '')).map((r) => r.status);
    expect(await sends(), 'nothing the browser refused went to the API').toEqual([]);

    // What only the API refuses (credentials in the URL): its 422 is shown at the field it names, without the path.
    await address.fill('https://user:pass@api.example.com/v2/tickets');
    await send.click();
    await messageAt('URL').waitFor();
    expect(await messageAt('URL').textContent()).toBe(
      'Credentials in the URL are not allowed: use a header with a secret.',
    );
    expect(await sends()).toEqual([422]);
    for (const text of await alerts()) expect(text).not.toMatch(/block\.|body\./);

    // Saving with the same problem: refused, said at the field, nothing stored.
    const save = page.getByRole('button', { name: 'Save workflow' });
    await save.click();
    await page.getByRole('alert').filter({ hasText: 'The workflow was not saved.' }).waitFor();
    expect(await messageAt('URL').textContent()).toBe(
      'Credentials in the URL are not allowed: use a header with a secret.',
    );
    for (const text of await alerts()) expect(text).not.toMatch(/blocks?\.|body\./);
    await address.fill('https://api.example.com/v2/tickets');
    await timeout.fill('abc');
    await save.click();
    await messageAt('Timeout (ms)').waitFor();
    expect(await messageAt('Timeout (ms)').textContent()).toBe(inWords);
    expect(await timeout.inputValue()).toBe('abc');
    await page.getByRole('alert').filter({ hasText: 'The workflow was not saved.' }).waitFor();
    expect((await owner.get(stored)).body.revision).toBe(0);

    // Corrected: saved, the timeout stored as a number.
    await timeout.fill('5000');
    await save.click();
    await page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
    expect(await alerts()).toEqual([]);
    const after = await owner.get(stored);
    expect(after.body.revision).toBe(1);
    expect(after.body.blocks[0].timeoutMs).toBe(5000);
    await context.close();
  });

  it('a delete refused after a refused save says why: the "not saved" notice does not hide it', async () => {
    const created = await owner.post(`${ws}/workflows`, {
      name: 'Kept flow',
      startBlockId: 'call',
      blocks: [apiBlock('call', 'https://api.example.com/v2/tickets', { name: 'Call' })],
    });
    expect(created.status, created.text).toBe(201);
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, EDITOR);
    await goTo(page, 'Workflows');
    await page.getByRole('link', { name: 'Kept flow' }).click();
    await page.getByRole('heading', { level: 1, name: 'Kept flow' }).waitFor();
    await page.getByLabel('Timeout (ms)').fill('abc');
    await page.getByRole('button', { name: 'Save workflow' }).click();
    await page.getByRole('alert').filter({ hasText: 'The workflow was not saved.' }).waitFor();
    // Meanwhile the editor loses workflows.edit: the delete is refused (403).
    const demoted = await owner.patch(`${ws}/members/${editorId}`, { role: 'operator' });
    expect(demoted.status, demoted.text).toBe(204);
    try {
      const answered = page.waitForResponse((r) => r.request().method() === 'DELETE');
      await page.getByRole('button', { name: 'Delete workflow' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
      expect((await answered).status()).toBe(403);
      await page
        .getByRole('alert')
        .filter({ hasText: 'Your role lacks the permission "workflows.edit".' })
        .waitFor({ timeout: 5_000 });
      expect((await owner.get(`${ws}/workflows/${created.body.id}`)).status).toBe(200);
    } finally {
      await owner.patch(`${ws}/members/${editorId}`, { role: 'editor' });
      await context.close();
    }
  });
});
