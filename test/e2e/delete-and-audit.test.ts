/**
 * Deleting a secret in a real browser (SPEC §5): a confirmation modal that
 * names the secret and lists the blocks that use it; Cancel keeps it, Delete
 * removes it (soft delete). Then the "Audit log" page shows what happened and
 * "Export CSV" downloads the trail.
 */
import { readFile } from 'node:fs/promises';
import type { Browser, Page } from 'playwright-core';
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
import { inviteAndJoin, setupOwner } from '../support/fixtures.js';
import type { TestClient } from '../support/harness.js';

const SUITE = 'Delete a secret and read the audit log in the browser';
const OWNER = 'owner@example.com';
const USED = 'zendesk_token';
const UNUSED = 'legacy_key';
const VALUE = 'zd_live_delete_me_4f9a8b7c6d5e';

const secretRow = (page: Page, name: string) =>
  page.getByRole('row').filter({ has: page.getByRole('rowheader', { name, exact: true }) });

const enabled = browserAvailable(SUITE);

describe.runIf(enabled)(SUITE, () => {
  let browser: Browser;
  let hush: BrowserApp;
  let owner: TestClient;
  let ws: string;
  let workspaceId: string;

  beforeAll(async () => {
    [browser, hush] = await Promise.all([launchBrowser(), startBrowserApp()]);
    const setup = await setupOwner(hush.t, OWNER);
    owner = setup.owner;
    workspaceId = setup.workspaceId;
    ws = `/api/v1/workspaces/${setup.workspaceId}`;
    for (const name of [USED, UNUSED]) {
      const res = await owner.post(`${ws}/secrets`, { name, visibility: 'masked', value: VALUE });
      expect(res.status, res.text).toBe(201);
    }
    const wf = await owner.post(`${ws}/workflows`, {
      name: 'Ticket lookup',
      startBlockId: 'find',
      blocks: [
        {
          id: 'find',
          type: 'api',
          name: 'Find ticket',
          method: 'GET',
          url: 'https://acme.zendesk.com/api/v2/tickets',
          query: [],
          headers: [{ key: 'Authorization', value: `Bearer {{secret:${USED}}}` }],
          body: { mode: 'none' },
          timeoutMs: 10_000,
          capture: [],
          onSuccess: null,
          onError: null,
        },
      ],
    });
    expect(wf.status, wf.text).toBe(201);
  });
  afterAll(async () => {
    await browser?.close();
    await hush?.close();
  });

  it('delete asks for confirmation in a modal that names the secret and lists the blocks using it', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    const modal = page.getByRole('dialog', { name: 'Delete secret' });

    // An unused secret: the modal says so; Cancel keeps the secret.
    await secretRow(page, UNUSED).getByRole('button', { name: 'Delete' }).click();
    await modal.getByText('No block uses it.').waitFor();
    expect(await modal.textContent()).toContain(UNUSED);
    await modal.getByRole('button', { name: 'Cancel' }).click();
    await modal.waitFor({ state: 'hidden' });
    await secretRow(page, UNUSED).waitFor();

    // A used secret: the modal lists the workflow and block.
    await secretRow(page, USED).getByRole('button', { name: 'Delete' }).click();
    await modal.waitFor();
    expect(await modal.getByRole('strong').textContent()).toBe(USED);
    const usages = modal.getByRole('list', { name: 'Blocks that use this secret' });
    await usages.waitFor();
    const items = await usages.getByRole('listitem').allTextContents();
    expect(items).toHaveLength(1);
    expect(items[0]).toContain('Ticket lookup');
    expect(items[0]).toContain('Find ticket');
    await modal.getByRole('button', { name: 'Delete', exact: true }).click();
    await modal.waitFor({ state: 'hidden' });
    await secretRow(page, USED).waitFor({ state: 'detached' });
    await secretRow(page, UNUSED).waitFor();

    // Soft-deleted: restorable, its name still taken.
    const deleted = await owner.get(`${ws}/secrets?deleted=true`);
    expect(deleted.body.items.map((s: { name: string }) => s.name)).toContain(USED);
    await context.close();
  });

  it('the Audit log page shows the actions, filters them, and Export CSV downloads the trail', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'Audit log');
    const table = page.getByRole('table');
    for (const action of ['workspace.created', 'secret.created', 'workflow.created', 'secret.deleted']) {
      await table.getByRole('cell', { name: action, exact: true }).first().waitFor();
    }
    expect(await table.getByRole('cell', { name: 'secret.created', exact: true }).count()).toBe(2);

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Export CSV' }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/\.csv$/);
    const csv = await readFile(await download.path(), 'utf8');
    const lines = csv.trim().split(/\r?\n/);
    expect(lines[0]).toContain('action');
    expect(lines.filter((l) => l.includes('secret.created'))).toHaveLength(2);
    expect(csv).toContain('secret.deleted');
    expect(csv).not.toContain(VALUE);

    await page.getByLabel('Action').fill('secret.deleted');
    await table.getByRole('cell', { name: 'secret.created', exact: true }).first().waitFor({ state: 'detached' });
    expect(await table.getByRole('cell', { name: 'secret.deleted', exact: true }).count()).toBe(1);

    await page.getByRole('button', { name: 'Verify chain' }).click();
    await page.getByRole('status').filter({ hasText: 'Chain intact' }).waitFor();

    // Who and when: another member's action shows only under their name; a window in the future is empty.
    await page.getByLabel('Action').fill('');
    const other = await inviteAndJoin(hush.t, owner, workspaceId, 'auditor@example.com', 'admin');
    const made = await other.client.post(`${ws}/secrets`, { name: 'auditor_key', visibility: 'masked', value: VALUE });
    expect(made.status, made.text).toBe(201);
    await page.reload();
    await page.getByLabel('Who').selectOption({ label: 'auditor@example.com' });
    await table.getByRole('cell', { name: 'workspace.created', exact: true }).waitFor({ state: 'detached' });
    const who = await table.getByRole('row').allTextContents();
    expect(who.slice(1).length).toBeGreaterThanOrEqual(1);
    for (const row of who.slice(1)) expect(row).toContain('auditor@example.com');
    await page.getByLabel('Who').selectOption({ label: 'Anyone' });
    await table.getByRole('cell', { name: 'workspace.created', exact: true }).waitFor();
    await page.getByLabel('From').fill('2999-01-01T00:00');
    await table.getByRole('cell', { name: 'workspace.created', exact: true }).waitFor({ state: 'detached' });
    expect(await table.getByRole('row').count()).toBe(1); // the header row only
    await context.close();
  });

  it('a role without audit.read gets no Audit log link, export or verify; settings by address say "not allowed"', async () => {
    await inviteAndJoin(hush.t, owner, workspaceId, 'no-audit@example.com', 'editor');
    const { context, page } = await openPage(browser, hush.baseUrl);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await signIn(page, 'no-audit@example.com');
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Workflows' }).waitFor();
    expect(await nav.getByRole('link', { name: 'Audit log' }).count()).toBe(0);

    await page.goto(`/w/${workspaceId}/audit`);
    await page.getByText('Your role in this workspace does not allow reading the audit log.').waitFor();
    expect(await page.getByRole('link', { name: 'Export CSV' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Verify chain' }).count()).toBe(0);
    await page.goto(`/w/${workspaceId}/settings`);
    await page.getByText('Your role in this workspace does not allow changing its settings.').waitFor();
    expect(await page.getByRole('button', { name: 'Save' }).count()).toBe(0);
    expect(errors).toEqual([]);
    await context.close();
  });

  it("Verify chain refused (the role changed meanwhile) shows the server's answer on the page", async () => {
    const { userId } = await inviteAndJoin(hush.t, owner, workspaceId, 'verifier@example.com', 'admin');
    const { context, page } = await openPage(browser, hush.baseUrl);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await signIn(page, 'verifier@example.com');
    await goTo(page, 'Audit log');
    const demoted = await owner.patch(`${ws}/members/${userId}`, { role: 'viewer' });
    expect(demoted.status, demoted.text).toBeLessThan(300);
    await page.getByRole('button', { name: 'Verify chain' }).click();
    await page.getByRole('alert').filter({ hasText: 'audit.read' }).waitFor();
    expect(await page.getByRole('status').filter({ hasText: 'Chain' }).count()).toBe(0);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('a deleted secret comes back with Undo or Restore, and is purged only after a confirmation', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    const modal = page.getByRole('dialog', { name: 'Delete secret' });
    const tab = (name: RegExp) => page.getByRole('tab', { name });

    // Undo right after deleting.
    await secretRow(page, UNUSED).getByRole('button', { name: 'Delete' }).click();
    await modal.getByRole('button', { name: 'Delete', exact: true }).click();
    await secretRow(page, UNUSED).waitFor({ state: 'detached' });
    const status = page.getByRole('status').filter({ hasText: `Deleted ${UNUSED}` });
    await status.getByText(/restored until .*\d/).waitFor(); // the server's purge time, not a placeholder
    // Focus went to what happened (and its Undo), not to <body> where the row's button was.
    expect(await page.evaluate<string>("document.activeElement?.getAttribute('role') ?? ''")).toBe('status');
    expect(await page.evaluate<string>("document.activeElement?.textContent ?? ''")).toContain(`Deleted ${UNUSED}`);
    await status.getByRole('button', { name: 'Undo' }).click();
    await secretRow(page, UNUSED).waitFor();
    await status.waitFor({ state: 'detached' });

    // Restore from the Deleted tab.
    await secretRow(page, UNUSED).getByRole('button', { name: 'Delete' }).click();
    await modal.getByRole('button', { name: 'Delete', exact: true }).click();
    await secretRow(page, UNUSED).waitFor({ state: 'detached' });
    await tab(/^Deleted \(2\)$/).click();
    const deletedRow = secretRow(page, UNUSED);
    expect(await deletedRow.textContent()).toMatch(/deleted secret/);
    // The purge is to come: said as such, not as done ("purged 12/5/2026").
    expect(await deletedRow.textContent()).toMatch(/Purged for good on \d/);
    expect(await deletedRow.textContent()).not.toMatch(/(^|[^ ])purged \d/);
    expect(await deletedRow.getByRole('button', { name: 'Reveal value' }).count()).toBe(0);
    await deletedRow.getByRole('button', { name: 'Restore' }).click();
    await tab(/^Deleted \(1\)$/).waitFor();
    await secretRow(page, UNUSED).waitFor({ state: 'detached' });
    await tab(/^All$/).click();
    await secretRow(page, UNUSED).waitFor();

    // Purge: Cancel keeps it; Purge destroys it and frees the name.
    await tab(/^Deleted \(1\)$/).click();
    const purge = page.getByRole('dialog', { name: 'Purge secret' });
    await secretRow(page, USED).getByRole('button', { name: 'Purge now' }).click();
    expect(await purge.textContent()).toContain('cannot be undone');
    await purge.getByRole('button', { name: 'Cancel' }).click();
    await purge.waitFor({ state: 'hidden' });
    expect((await owner.get(`${ws}/secrets?deleted=true`)).body.items.map((s: { name: string }) => s.name)).toEqual([
      USED,
    ]);
    await secretRow(page, USED).getByRole('button', { name: 'Purge now' }).click();
    await purge.getByRole('button', { name: 'Purge', exact: true }).click();
    await purge.waitFor({ state: 'hidden' });
    await tab(/^Deleted \(0\)$/).waitFor();
    expect((await owner.get(`${ws}/secrets?deleted=true`)).body.items).toEqual([]);
    const again = await owner.post(`${ws}/secrets`, { name: USED, visibility: 'masked', value: VALUE });
    expect(again.status, again.text).toBe(201);
    await context.close();

    // An Editor (no secrets.manage) has no Deleted tab.
    await inviteAndJoin(hush.t, owner, workspaceId, 'editor@example.com', 'editor');
    const editor = await openPage(browser, hush.baseUrl);
    await signIn(editor.page, 'editor@example.com');
    await editor.page.getByRole('tab', { name: 'Secrets' }).waitFor();
    expect(await editor.page.getByRole('tab', { name: /^Deleted/ }).count()).toBe(0);
    await editor.context.close();
  });
});
