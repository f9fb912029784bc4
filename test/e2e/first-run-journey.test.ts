/**
 * What a first-time owner meets around the workspace pages, in a real
 * browser: the navigation from API tokens (a page of no workspace) back into
 * one, renaming the workspace in Settings, and the Audit log's table.
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

const SUITE = 'A first-time owner around the workspace pages';
const OWNER = 'owner@example.com';

const enabled = browserAvailable(SUITE);

describe.runIf(enabled)(SUITE, () => {
  let browser: Browser;
  let hush: BrowserApp;
  let workspaceId: string;

  beforeAll(async () => {
    [browser, hush] = await Promise.all([launchBrowser(), startBrowserApp()]);
    ({ workspaceId } = await setupOwner(hush.t, OWNER));
  });
  afterAll(async () => {
    await browser?.close();
    await hush?.close();
  });

  it('from API tokens, Settings and Audit log lead into the workspace last shown', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'API tokens');
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Settings', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Workspace settings' }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/w/${workspaceId}/settings`);
    await goTo(page, 'API tokens');
    await goTo(page, 'Audit log');
    expect(new URL(page.url()).pathname).toBe(`/w/${workspaceId}/audit`);
    await context.close();
  });

  it('renaming the workspace in Settings renames it in the workspace switcher too', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings', exact: true }).click();
    await page.getByLabel('Workspace name').fill('Acme Support');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    const switcher = page.getByRole('combobox', { name: 'Workspace', exact: true });
    await expect.poll(() => switcher.locator('option:checked').textContent()).toBe('Acme Support (Owner)');
    await context.close();
  });
  it('Settings says "Saved." or the error of the last save, never an earlier one', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings', exact: true }).click();
    const name = page.getByLabel('Workspace name');
    const save = page.getByRole('button', { name: 'Save' });
    const saved = page.getByRole('status').filter({ hasText: 'Saved.' });
    const error = page.getByRole('alert');
    await name.fill('Acme Support');
    await save.click();
    await saved.waitFor();
    await name.fill('');
    await save.click();
    await error.waitFor();
    expect(await saved.count(), '"Saved." beside the error of a refused save').toBe(0);
    await name.fill('Acme');
    await save.click();
    await saved.waitFor();
    expect(await error.count(), 'the error of an earlier save beside "Saved."').toBe(0);
    await context.close();
  });
  it('on a wide screen the Audit log breaks no number, person or action in the middle of a word', async () => {
    const owner = hush.t.client();
    expect((await owner.post('/api/v1/auth/login', { email: OWNER, password: PASSWORD })).status).toBe(200);
    // Enough events for two-digit numbers, with long actions and details.
    for (let i = 0; i < 6; i++) {
      const made = await owner.post(`/api/v1/workspaces/${workspaceId}/secrets`, {
        name: `restorable_${i}`,
        visibility: 'masked',
        value: 'a value long enough to hold',
        description: 'x'.repeat(200),
        allowedHosts: [`api-${i}.example.com`, `*.service-${i}.example.org`],
      });
      expect(made.status, made.text).toBe(201);
      const gone = await owner.delete(`/api/v1/workspaces/${workspaceId}/secrets/${made.body.id}`);
      expect(gone.status, gone.text).toBe(204);
      const back = await owner.post(`/api/v1/workspaces/${workspaceId}/secrets/${made.body.id}/restore`, {});
      expect(back.status, back.text).toBe(200);
    }
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'Audit log');
    await page.getByRole('cell', { name: 'secret.restored' }).first().waitFor();
    // A text laid out on more lines than it has words was broken inside a word.
    const broken = await page.evaluate<string[]>(`(() => {
      const found = [];
      for (const row of document.querySelectorAll('table.list tbody tr')) {
        for (const cell of [...row.querySelectorAll('td')].slice(0, 4)) {
          const texts = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
          for (let node = texts.nextNode(); node; node = texts.nextNode()) {
            const words = node.textContent.split(/\\s+/).filter(Boolean).length;
            const range = document.createRange();
            range.selectNodeContents(node);
            const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
            if (lines > words) found.push(node.textContent);
          }
        }
      }
      return found;
    })()`);
    expect(broken).toEqual([]);
    await context.close();
  });
  it("a run's steps are shown by their blocks' names, not their ids", async () => {
    const owner = hush.t.client();
    expect((await owner.post('/api/v1/auth/login', { email: OWNER, password: PASSWORD })).status).toBe(200);
    const wf = await owner.post(`/api/v1/workspaces/${workspaceId}/workflows`, {
      name: 'Ticket lookup',
      startBlockId: 'api_1_k3x9',
      // Refused by the SSRF guard: the step fails, without any network.
      blocks: [apiBlock('api_1_k3x9', 'http://127.0.0.1:9/tickets', { name: 'Find ticket' })],
    });
    expect(wf.status, wf.text).toBe(201);
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'Runs');
    await page.getByRole('button', { name: 'Run now' }).click();
    const detail = page.getByRole('region', { name: 'Run detail' });
    await detail.waitFor();
    const step = detail.locator('summary').first();
    await expect.poll(() => step.textContent()).toMatch(/^1\. Find ticket — failed/);
    await context.close();
  });
  it('API tokens: an expiry that is not a number of days is said at the field in words', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'API tokens');
    await page.getByLabel('Token name').fill('ci');
    const days = page.getByLabel('Expires in days');
    for (const typed of ['abc', '0', '400']) {
      await days.fill(typed);
      await page.getByRole('button', { name: 'Create token' }).click();
      const alert = page.getByRole('alert');
      await alert.waitFor();
      expect(await alert.allTextContents()).toEqual(['A whole number of days, from 1 to 365.']);
    }
    await days.fill('7');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.getByRole('status').filter({ hasText: 'Copy it now' }).waitFor();
    expect(await page.getByRole('alert').count()).toBe(0);
    await context.close();
  });
  it('API tokens: revoking the token shown once takes its notice away; revoking another leaves it', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'API tokens');
    const notice = page.getByRole('status').filter({ hasText: 'Copy it now' });
    const create = async (name: string): Promise<string> => {
      await page.getByLabel('Token name').fill(name);
      await page.getByRole('button', { name: 'Create token' }).click();
      await notice.filter({ hasText: 'hush_' }).waitFor();
      await page.getByRole('row').filter({ hasText: name }).waitFor();
      const token = (await notice.locator('code').textContent()) ?? '';
      expect(token).toMatch(/^hush_/);
      return token;
    };
    const answers = async (token: string) =>
      (await fetch(`${hush.baseUrl}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } })).status;
    const older = await create('revoked later');
    const shown = await create('revoked now');
    expect(shown).not.toBe(older);
    expect(await answers(shown)).toBe(200);

    // Revoking asks first: Cancel keeps the token.
    const dialog = page.getByRole('dialog', { name: 'Revoke token' });
    await page.getByRole('button', { name: 'Revoke token revoked later' }).click();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect(await page.getByRole('row').filter({ hasText: 'revoked later' }).count()).toBe(1);
    expect(await answers(older)).toBe(200);

    // Another token revoked: the one on screen still works, its notice stays.
    const revoke = async (name: string) => {
      await page.getByRole('button', { name: `Revoke token ${name}` }).click();
      await dialog.getByRole('button', { name: 'Revoke', exact: true }).click();
    };
    await revoke('revoked later');
    await page.getByRole('row').filter({ hasText: 'revoked later' }).waitFor({ state: 'detached' });
    expect(await answers(older)).toBe(401);
    expect(await notice.locator('code').textContent()).toBe(shown);

    // The token on screen revoked: it answers 401, and no notice offers it for copying.
    await revoke('revoked now');
    await page.getByRole('row').filter({ hasText: 'revoked now' }).waitFor({ state: 'detached' });
    await notice.waitFor({ state: 'detached' });
    expect(await answers(shown)).toBe(401);
    expect(await page.getByText(shown).count()).toBe(0);
    expect(await page.getByRole('alert').count()).toBe(0);
    await context.close();
  });

  it('a new workflow without a name is said at the field in words, and typing a name clears it', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'Workflows');
    const field = page.getByLabel('New workflow name');
    for (const typed of ['', '   ']) {
      await field.fill(typed);
      await page.getByRole('button', { name: 'Create workflow' }).click();
      const alert = page.getByRole('alert');
      await alert.waitFor();
      expect(await alert.allTextContents()).toEqual(['Give the workflow a name.']);
      expect(await field.getAttribute('aria-invalid')).toBe('true');
    }
    await field.fill('Refunds');
    expect(await page.getByRole('alert').count()).toBe(0);
    await page.getByRole('button', { name: 'Create workflow' }).click();
    await page.waitForURL(/\/workflows\/wf_/);
    await context.close();
  });
});
