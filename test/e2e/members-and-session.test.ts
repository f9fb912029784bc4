/**
 * Membership and the session in a real browser: accepting an invitation
 * lands in the workspace joined; a session that ends under an open page
 * brings the sign-in page back (no secret name stays on screen); leaving or
 * removing asks first, and a change to one's own membership moves to a
 * workspace still held; each role is offered only what its permissions allow.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrowserApp,
  browserAvailable,
  domTexts,
  goTo,
  launchBrowser,
  openPage,
  signIn,
  startBrowserApp,
} from '../support/browser.js';
import { inviteAndJoin, setupOwner } from '../support/fixtures.js';
import { PASSWORD, type TestClient } from '../support/harness.js';

const SUITE = 'Members and the session in the browser';
const OWNER = 'owner@example.com';
const SECRET = 'stripe_live_key';

const enabled = browserAvailable(SUITE);

/** Collects the page's uncaught errors (an unhandled rejection included). */
function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return errors;
}

describe.runIf(enabled)(SUITE, () => {
  let browser: Browser;
  let hush: BrowserApp;
  let owner: TestClient;
  let workspaceId: string;
  let ws: string;

  beforeAll(async () => {
    [browser, hush] = await Promise.all([launchBrowser(), startBrowserApp()]);
    const setup = await setupOwner(hush.t, OWNER);
    owner = setup.owner;
    workspaceId = setup.workspaceId;
    ws = `/api/v1/workspaces/${workspaceId}`;
    const res = await owner.post(`${ws}/secrets`, {
      name: SECRET,
      visibility: 'masked',
      value: 'sk_live_0123456789abc',
    });
    expect(res.status, res.text).toBe(201);
  });
  afterAll(async () => {
    await browser?.close();
    await hush?.close();
  });

  it('accepting an invitation signs in and lands in the workspace joined, the token gone from the address bar', async () => {
    const inv = await owner.post(`${ws}/invitations`, { email: 'newcomer@example.com', role: 'editor' });
    expect(inv.status, inv.text).toBe(201);
    const { context, page } = await openPage(browser, hush.baseUrl);
    const errors = pageErrors(page);
    await page.goto(`/invite#token=${encodeURIComponent(inv.body.token)}`);
    await page.getByLabel('Your name').fill('Nora Newcomer');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Accept invitation' }).click();
    await page.getByRole('heading', { level: 1, name: 'Variables' }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/w/${workspaceId}/variables`);
    expect(page.url()).not.toContain(inv.body.token);
    expect(await page.getByRole('heading', { name: 'Join a workspace' }).count()).toBe(0);
    await page.getByText('newcomer@example.com').waitFor();
    expect(errors).toEqual([]);
    await context.close();
  });

  it('a refused invitation form shows its message once, at the field, without the request path', async () => {
    const inv = await owner.post(`${ws}/invitations`, { email: 'hesitant@example.com', role: 'viewer' });
    expect(inv.status, inv.text).toBe(201);
    const { context, page } = await openPage(browser, hush.baseUrl);
    await page.goto(`/invite#token=${encodeURIComponent(inv.body.token)}`);
    await page.getByLabel('Your name').fill('Hesitant');
    await page.getByRole('button', { name: 'Accept invitation' }).click();
    const atPassword = page
      .locator('.field')
      .filter({ has: page.getByLabel('Password') })
      .getByRole('alert');
    await atPassword.waitFor();
    const alerts = await page.getByRole('alert').allTextContents();
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).not.toMatch(/body\.|password:/);
    await context.close();
  });

  it('a session ended in another tab: the next call brings the sign-in page, no secret name stays on screen', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await page.getByRole('rowheader', { name: SECRET }).waitFor();
    const other = await context.newPage();
    await other.goto('/');
    await other.getByRole('button', { name: 'Sign out' }).click();
    await other.getByRole('button', { name: 'Sign in' }).waitFor();

    // The first tab still shows the workspace; its next call (a search) answers 401.
    await page.getByRole('searchbox', { name: 'Search' }).fill('stripe');
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
    for (const { where, text } of await domTexts(page)) expect(text, where).not.toContain(SECRET);

    // Signing in again returns to the page it was on.
    await page.getByLabel('Email').fill(OWNER);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Variables' }).waitFor();
    await context.close();
  });

  it('an admin is offered no owner-only action; Remove asks first; demoting oneself leaves no stale page', async () => {
    const admin = 'admin@example.com';
    await inviteAndJoin(hush.t, owner, workspaceId, admin, 'admin');
    const gone = await inviteAndJoin(hush.t, owner, workspaceId, 'removed@example.com', 'editor');
    const { context, page } = await openPage(browser, hush.baseUrl);
    const errors = pageErrors(page);
    await signIn(page, admin);
    await goTo(page, 'Members');
    const row = (email: string) =>
      page.getByRole('table', { name: 'Members', exact: true }).getByRole('row').filter({ hasText: email });
    await row('removed@example.com').waitFor();

    // The owner's row: no role select, no Remove; no list offers the owner role.
    expect(await row(OWNER).getByRole('combobox').count()).toBe(0);
    expect(await row(OWNER).getByRole('button').count()).toBe(0);
    const offered = async (label: string) =>
      page.getByRole('combobox', { name: label }).locator('option').allTextContents();
    expect(await offered('Invite role')).not.toContain('Owner');
    expect(await offered('Invite role')).toContain('Editor');
    expect(await offered(`Role of ${admin}`)).not.toContain('Owner');

    // Remove asks in a modal; Cancel keeps the member, Remove removes them.
    await row('removed@example.com').getByRole('button', { name: 'Remove' }).click();
    const modal = page.getByRole('dialog', { name: 'Remove member' });
    await modal.getByText('removed@example.com').waitFor();
    await modal.getByRole('button', { name: 'Cancel' }).click();
    await modal.waitFor({ state: 'hidden' });
    const members = async () =>
      ((await owner.get(`${ws}/members`)).body.items as { userId: string }[]).map((m) => m.userId);
    expect(await members()).toContain(gone.userId);
    await row('removed@example.com').getByRole('button', { name: 'Remove' }).click();
    await modal.getByRole('button', { name: 'Remove', exact: true }).click();
    await row('removed@example.com').waitFor({ state: 'detached' });
    expect(await members()).not.toContain(gone.userId);

    // Demoting oneself to viewer: the page follows the new role (viewers cannot read members).
    await page.getByRole('combobox', { name: `Role of ${admin}` }).selectOption('viewer');
    await page.getByText('Your role cannot see the members of this workspace.').waitFor();
    await page
      .getByRole('combobox', { name: 'Workspace' })
      .locator('option', { hasText: '(Viewer)' })
      .waitFor({ state: 'attached' });
    expect(await page.getByRole('button', { name: 'Invite' }).count()).toBe(0);
    expect(await page.getByRole('alert').count()).toBe(0);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('pending invitations are listed at once with role, inviter and expiry; Revoke asks first, and its link is refused', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    const errors = pageErrors(page);
    await signIn(page, OWNER);
    await goTo(page, 'Members');
    const pending = page.getByRole('table', { name: 'Pending invitations' });
    const email = page.getByLabel('Invite email');
    await email.fill('pending@example.com');
    await page.getByRole('combobox', { name: 'Invite role' }).selectOption('editor');
    await page.getByRole('button', { name: 'Invite', exact: true }).click();
    const link = page.getByRole('status').filter({ hasText: 'Send this one-time link' });
    await link.waitFor();
    const token = new URLSearchParams(((await link.locator('code').textContent()) ?? '').split('#')[1]).get('token');
    expect(token).toBeTruthy();
    expect(await email.inputValue(), 'the email field is cleared after a successful invite').toBe('');

    // The new invitation is listed at once, first, with its role, who invited and when it expires.
    const row = pending.getByRole('row').filter({ hasText: 'pending@example.com' });
    await row.waitFor();
    expect(await pending.getByRole('row').nth(1).textContent()).toContain('pending@example.com');
    const cells = await row.getByRole('cell').allTextContents();
    expect(cells.slice(0, 3)).toEqual(['pending@example.com', 'Editor', OWNER]);
    expect(Date.parse((await row.locator('time').getAttribute('datetime')) ?? '')).toBeGreaterThan(Date.now());

    // Revoke asks in a modal: Cancel keeps it, Revoke revokes it, and its link goes from the page.
    const pendingIds = async () =>
      ((await owner.get(`${ws}/invitations`)).body.items as { email: string }[]).map((i) => i.email);
    await row.getByRole('button', { name: 'Revoke invitation of pending@example.com' }).click();
    const modal = page.getByRole('dialog', { name: 'Revoke invitation' });
    await modal.getByText('pending@example.com').waitFor();
    await modal.getByRole('button', { name: 'Cancel' }).click();
    await modal.waitFor({ state: 'hidden' });
    expect(await pendingIds()).toContain('pending@example.com');
    await row.getByRole('button', { name: 'Revoke invitation of pending@example.com' }).click();
    await modal.getByRole('button', { name: 'Revoke', exact: true }).click();
    await row.waitFor({ state: 'detached' });
    await link.waitFor({ state: 'detached' });
    expect(await pendingIds()).not.toContain('pending@example.com');
    const accepted = await hush.t
      .client()
      .post('/api/v1/invitations/accept', { token, name: 'Too late', password: PASSWORD });
    expect(accepted.status, accepted.text).toBe(404);
    expect(accepted.body.code).toBe('invitation_invalid');
    expect(await page.getByRole('alert').count()).toBe(0);
    expect(errors).toEqual([]);
    await context.close();

    // A role without members.manage sees no invitations.
    await inviteAndJoin(hush.t, owner, workspaceId, 'reader@example.com', 'editor');
    await owner.post(`${ws}/invitations`, { email: 'still-pending@example.com', role: 'viewer' });
    const reader = await openPage(browser, hush.baseUrl);
    await signIn(reader.page, 'reader@example.com');
    await goTo(reader.page, 'Members');
    await reader.page.getByRole('row').filter({ hasText: OWNER }).waitFor();
    expect(await reader.page.getByRole('heading', { name: 'Pending invitations' }).count()).toBe(0);
    expect(await reader.page.getByText('still-pending@example.com').count()).toBe(0);
    await reader.context.close();
  });

  it('built-in roles show their names from the spec (Owner, Admin…) everywhere; a custom role its own name', async () => {
    const custom = await owner.post(`${ws}/roles`, { name: 'support desk', permissions: ['variables.read'] });
    expect(custom.status, custom.text).toBe(201);
    const { client: desk } = await inviteAndJoin(hush.t, owner, workspaceId, 'desk@example.com', custom.body.id);
    expect((await desk.post('/api/v1/workspaces', { name: 'Desk Lab' })).status).toBe(201);
    await owner.post(`${ws}/invitations`, { email: 'future-admin@example.com', role: 'admin' });
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'Members');
    const spec = ['Owner', 'Admin', 'Editor', 'Manager', 'Operator', 'Viewer'];
    const cards = page.locator('ul.cards > li > strong');
    await expect.poll(() => cards.allTextContents()).toEqual([...spec, 'support desk']);
    const roleOf = (email: string) => page.getByRole('combobox', { name: `Role of ${email}` });
    expect(await roleOf(OWNER).locator('option:checked').textContent()).toBe('Owner');
    const select = page.getByRole('combobox', { name: 'Role of desk@example.com' });
    expect(await select.locator('option').allTextContents()).toEqual([...spec, 'support desk']);
    expect(await select.locator('option:checked').textContent()).toBe('support desk');
    expect(await page.getByRole('combobox', { name: 'Invite role' }).locator('option').allTextContents()).toEqual([
      ...spec,
      'support desk',
    ]);
    const invited = page
      .getByRole('table', { name: 'Pending invitations' })
      .getByRole('row')
      .filter({ hasText: 'future-admin@example.com' });
    expect(await invited.getByRole('cell').nth(1).textContent()).toBe('Admin');
    const switcher = page.getByRole('combobox', { name: 'Workspace', exact: true });
    expect(await switcher.locator('option:checked').textContent()).toMatch(/ \(Owner\)$/);
    // No lower-case system role name is left in the page's text.
    // biome-ignore lint/performance/useDomNodeTextContent: the words as rendered, separated
    const text = await page.locator('body').innerText();
    for (const id of ['owner', 'admin', 'editor', 'manager', 'operator', 'viewer'])
      expect(text).not.toMatch(new RegExp(`(^|[\\s(])${id}([\\s)]|$)`));
    await context.close();

    // The member with the custom role sees its name as the owner wrote it, and Owner for their own workspace.
    const other = await openPage(browser, hush.baseUrl);
    await signIn(other.page, 'desk@example.com');
    const theirs = other.page.getByRole('combobox', { name: 'Workspace', exact: true }).locator('option');
    await expect
      .poll(() => theirs.allTextContents())
      .toEqual(expect.arrayContaining([expect.stringMatching(/ \(support desk\)$/), 'Desk Lab (Owner)']));
    await other.context.close();
  });

  it('leaving asks first, then moves to a workspace still held, with no error', async () => {
    const leaver = 'leaver@example.com';
    const joined = await inviteAndJoin(hush.t, owner, workspaceId, leaver, 'editor');
    const own = await joined.client.post('/api/v1/workspaces', { name: 'Leaver Lab' });
    expect(own.status, own.text).toBe(201);
    const { context, page } = await openPage(browser, hush.baseUrl);
    const errors = pageErrors(page);
    await signIn(page, leaver);
    await page.goto(`/w/${workspaceId}/members`);
    await page.getByRole('heading', { level: 1, name: 'Members' }).waitFor();
    await page.getByRole('button', { name: 'Leave' }).click();
    const modal = page.getByRole('dialog', { name: 'Leave workspace' });
    await modal.getByRole('button', { name: 'Cancel' }).click();
    await modal.waitFor({ state: 'hidden' });
    const isMember = async () =>
      ((await owner.get(`${ws}/members`)).body.items as { userId: string }[]).some((m) => m.userId === joined.userId);
    expect(await isMember()).toBe(true);

    await page.getByRole('button', { name: 'Leave' }).click();
    await modal.getByRole('button', { name: 'Leave', exact: true }).click();
    await page.waitForURL(`**/w/${own.body.id}/variables`);
    await page.getByRole('heading', { level: 1, name: 'Variables' }).waitFor();
    expect(await isMember()).toBe(false);
    const switcher = page.getByRole('combobox', { name: 'Workspace' });
    await expect.poll(() => switcher.locator('option').allTextContents()).toEqual(['Leaver Lab (Owner)']);
    expect(await page.getByRole('alert').count()).toBe(0);
    expect(errors).toEqual([]);
    await context.close();
  });
});
