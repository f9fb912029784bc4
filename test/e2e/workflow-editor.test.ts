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
import { inviteAndJoin, setupOwner } from '../support/fixtures.js';
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

  beforeAll(async () => {
    [browser, hush] = await Promise.all([launchBrowser(), startBrowserApp()]);
    const setup = await setupOwner(hush.t, OWNER);
    owner = setup.owner;
    await inviteAndJoin(hush.t, owner, setup.workspaceId, EDITOR, 'editor');
    const ws = `/api/v1/workspaces/${setup.workspaceId}`;
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
});
