/**
 * Writes the README's screenshots to docs/screenshots/ from a real browser:
 * the Variables panel as an Owner and as an Editor, the secret side panel,
 * the delete modal, an API block with a secret chip, and a Send request
 * result. Runs only with HUSH_SCREENSHOTS=1:
 *
 *   npx vite build --logLevel warn && HUSH_SCREENSHOTS=1 npx vitest run test/e2e/screenshots.test.ts
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
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
import { startUpstream, type Upstream } from '../support/upstream.js';

const SUITE = 'Screenshots for docs/screenshots';
const OUT = path.resolve(import.meta.dirname, '../../docs/screenshots');
const OWNER = 'owner@example.com';
const EDITOR = 'editor@example.com';
const wanted = process.env.HUSH_SCREENSHOTS === '1';
if (!wanted) process.stderr.write(`\n[browser tests] "${SUITE}" runs only with HUSH_SCREENSHOTS=1.\n`);
const enabled = wanted && browserAvailable(SUITE);

describe.runIf(enabled)(SUITE, () => {
  let browser: Browser;
  let hush: BrowserApp;
  let up: Upstream;
  let workspaceId: string;

  async function shoot(page: Page, name: string): Promise<void> {
    const file = path.join(OUT, `${name}.png`);
    await page.screenshot({ path: file });
    expect(statSync(file).size).toBeGreaterThan(10_000);
  }

  beforeAll(async () => {
    mkdirSync(OUT, { recursive: true });
    up = await startUpstream();
    up.handle((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          ticket: { id: 4242, subject: 'Refund for order #1187', status: 'open' },
          requester: { email: 'ada@example.com' },
          echo: { authorization: req.headers.authorization },
        }),
      );
    });
    [browser, hush] = await Promise.all([
      launchBrowser(),
      startBrowserApp({ HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' }),
    ]);
    const setup = await setupOwner(hush.t, OWNER);
    workspaceId = setup.workspaceId;
    const ws = `/api/v1/workspaces/${workspaceId}`;
    const secrets = [
      // No hosts: pinned to the first host it is sent to (the local upstream here).
      ['zendesk_token', 'masked', 'Zendesk API token (support bot)', []],
      ['hubspot_key', 'restricted', 'HubSpot private app key', ['api.hubapi.com']],
      ['sheets_token', 'masked', 'Google Sheets service account token', ['sheets.googleapis.com']],
    ] as const;
    for (const [name, visibility, description, allowedHosts] of secrets) {
      const res = await setup.owner.post(`${ws}/secrets`, {
        name,
        visibility,
        description,
        allowedHosts,
        value: `${name}-value-4f9a8b7c6d5e`,
      });
      expect(res.status, res.text).toBe(201);
    }
    for (const [name, type, testValue, description] of [
      ['customer_email', 'text', 'ada@example.com', 'Who opened the conversation'],
      ['order_id', 'number', 1187, 'Order under discussion'],
    ] as const) {
      const res = await setup.owner.post(`${ws}/variables`, { name, type, testValue, description });
      expect(res.status, res.text).toBe(201);
    }
    const wf = await setup.owner.post(`${ws}/workflows`, {
      name: 'Refund assistant',
      startBlockId: 'find_ticket',
      blocks: [
        {
          id: 'find_ticket',
          type: 'api',
          name: 'Find ticket',
          method: 'GET',
          url: `${up.url}/api/v2/tickets/{{order_id}}`,
          query: [{ key: 'include', value: 'users' }],
          headers: [{ key: 'Authorization', value: 'Bearer {{secret:zendesk_token}}' }],
          body: { mode: 'none' },
          timeoutMs: 10_000,
          capture: [{ variable: 'customer_email', path: '$.requester.email' }],
          onSuccess: null,
          onError: null,
        },
      ],
    });
    expect(wf.status, wf.text).toBe(201);
    await inviteAndJoin(hush.t, setup.owner, workspaceId, EDITOR, 'editor');
  });
  afterAll(async () => {
    await browser?.close();
    await hush?.close();
    await up?.close();
  });

  it('the Variables panel (owner), the secret side panel and the delete modal', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await page.getByRole('rowheader', { name: 'order_id' }).waitFor();
    await page.getByRole('rowheader', { name: 'zendesk_token' }).waitFor();
    await shoot(page, 'variables-owner');

    await page.getByRole('button', { name: 'Create New' }).click();
    const panel = page.getByRole('dialog', { name: 'Create New' });
    await panel.getByLabel('Name', { exact: true }).fill('stripe_key');
    await panel.getByRole('radio', { name: 'Masked' }).check();
    await panel.getByLabel('Value', { exact: true }).fill('sk_live_not_a_real_key_0123456789');
    await panel.getByLabel('Description', { exact: true }).fill('Stripe restricted key for refunds');
    await panel.getByLabel('Allowed hosts', { exact: true }).fill('api.stripe.com');
    await shoot(page, 'secret-side-panel');
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'hidden' });

    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'zendesk_token' }) });
    await row.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('list', { name: 'Blocks that use this secret' }).waitFor();
    await shoot(page, 'delete-modal');
    await context.close();
  });

  it('the Variables panel (editor), an API block with a secret chip, and a Send request result', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, EDITOR);
    await page.getByRole('rowheader', { name: 'zendesk_token' }).waitFor();
    await shoot(page, 'variables-editor');

    await goTo(page, 'Workflows');
    await page.getByRole('link', { name: 'Refund assistant' }).click();
    await page.getByRole('button', { name: 'Remove secret zendesk_token' }).waitFor();
    await page.getByRole('group', { name: 'Headers' }).getByRole('button', { name: 'Add secret' }).click();
    await page.getByRole('listbox', { name: 'Secrets' }).waitFor();
    await shoot(page, 'api-block-secret-chip');
    await page.getByRole('group', { name: 'Headers' }).getByRole('button', { name: 'Add secret' }).click();

    await page.getByRole('button', { name: 'Send request' }).click();
    const response = page.getByRole('region', { name: 'Response' });
    await response.getByRole('heading', { name: /^Status 200/ }).waitFor();
    await response.getByText('Request sent').click();
    await response.scrollIntoViewIfNeeded();
    await shoot(page, 'send-request-result');
    await context.close();
  });
});
