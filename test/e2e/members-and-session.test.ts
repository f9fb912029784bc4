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
  launchBrowser,
  openPage,
  signIn,
  startBrowserApp,
} from '../support/browser.js';
import { setupOwner } from '../support/fixtures.js';
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
});
