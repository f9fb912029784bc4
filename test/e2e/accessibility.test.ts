/**
 * An axe-core check of the main pages (SPEC §5 "keyboard-accessible
 * throughout"): setup, sign-in, Variables with the side panel closed and
 * open and with the delete modal, Workflows list and editor (secret chip,
 * "Add secret" dropdown, response viewer), Runs, Audit log, Members and API
 * tokens. No serious or critical violation is allowed; lesser ones are
 * printed so they stay visible. Where axe cannot decide a contrast (text in
 * a modal <dialog>, which it sees "overlapping" the page under the top
 * layer; fields under the open Add secret dropdown), the test measures it
 * itself (test/support/contrast.ts) and requires WCAG 2.1 AA. At 200% zoom
 * (640 × 360) nothing may scroll sideways and the main controls stay whole —
 * Variables (with a 64-character name and a 500-character description), the
 * workflow editor, Runs with a run open, Audit log, Members and API tokens —
 * and a modal listing 15 blocks keeps its buttons on screen.
 */
// The named export: the package types itself as CommonJS, so under NodeNext its default import is the module object.
import { AxeBuilder } from '@axe-core/playwright';
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
import { type Contrast, measureContrast } from '../support/contrast.js';
import { setupOwner } from '../support/fixtures.js';
import { SETUP_TOKEN, type TestClient } from '../support/harness.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const SUITE = 'Accessibility (axe) of the main pages';
const OWNER = 'owner@example.com';

interface Finding {
  page: string;
  rule: string;
  impact: string;
  help: string;
  targets: string[];
}

const enabled = browserAvailable(SUITE);

describe.runIf(enabled)(SUITE, () => {
  let browser: Browser;
  let hush: BrowserApp;
  let up: Upstream;
  const findings: Finding[] = [];
  const checked: string[] = [];
  const review: string[] = [];
  const contrasts: string[] = [];
  /** The owner's API client and the workspace's API path, from the first test. */
  let owner: TestClient;
  let ws: string;

  /**
   * Measures the text contrast of what `selectors` match on the page as it is now (what axe leaves
   * undecided there) and requires WCAG 2.1 AA: 4.5:1, or 3:1 for large text. An element covered by
   * something opaque (a field under the open dropdown) is measured all the same: its uncovered part shows.
   */
  async function expectContrast(page: Page, label: string, selectors: string[]): Promise<void> {
    const measured = await measureContrast(page, selectors);
    const line = (m: Contrast) =>
      `${label}: ${m.selector} ${m.color} on ${m.background} (${m.layers.join(' < ')}), ` +
      `${m.fontSize}px/${m.fontWeight}: ${m.ratio}:1, needs ${m.required}:1${m.coveredBy ? `, centre under ${m.coveredBy}` : ''}`;
    contrasts.push(...measured.map(line));
    expect(measured.filter((m) => m.backgroundImage !== null).map(line), 'text over a background image').toEqual([]);
    expect(measured.filter((m) => m.ratio < m.required).map(line), 'text below WCAG AA contrast').toEqual([]);
  }

  /** Runs axe on the page as it is now and keeps what it found under `label`. */
  async function audit(page: Page, label: string): Promise<void> {
    const results = await new AxeBuilder({ page }).analyze();
    checked.push(label);
    for (const v of results.violations) {
      findings.push({
        page: label,
        rule: v.id,
        impact: v.impact ?? 'unknown',
        help: v.help,
        targets: v.nodes.map((n) => n.target.join(' ')),
      });
    }
    // What axe could not decide (e.g. contrast over a modal's backdrop) is reported for a human to review.
    for (const v of results.incomplete) {
      if (v.impact === 'serious' || v.impact === 'critical') {
        review.push(`${label}: ${v.id} (${v.impact}) — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
      }
    }
  }

  /** At 640 × 360, what sticks out sideways: the page, or the main area (it scrolls on its own). */
  const overflow = (page: Page) =>
    page.evaluate<{ page: number; content: number }>(`(() => {
      const c = document.querySelector('.content');
      return {
        page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
        content: c.scrollWidth - c.clientWidth,
      };
    })()`);
  /** Whether the element lies whole inside a 640 px wide viewport (scrolled into view vertically first). */
  const inside = async (what: ReturnType<Page['getByRole']>) => {
    await what.scrollIntoViewIfNeeded();
    const box = await what.boundingBox();
    return box !== null && box.x >= 0 && box.x + box.width <= 640;
  };
  /** Whether the element lies whole inside the 640 × 360 viewport as it is now, without scrolling. */
  const onScreen = async (what: ReturnType<Page['getByRole']>) => {
    const box = await what.boundingBox();
    return box !== null && box.x >= 0 && box.y >= 0 && box.x + box.width <= 640 && box.y + box.height <= 360;
  };

  beforeAll(async () => {
    up = await startUpstream();
    up.handle((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ticket: { id: 42, status: 'open' }, authorization: req.headers.authorization }));
    });
    [browser, hush] = await Promise.all([
      launchBrowser(),
      startBrowserApp({ HUSH_OUTBOUND_ALLOW_CIDRS: '127.0.0.0/8' }),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    await hush?.close();
    await up?.close();
    if (contrasts.length > 0) {
      process.stderr.write(`\n[contrast] measured in the page, all at least WCAG AA:\n  ${contrasts.join('\n  ')}\n`);
    }
    if (review.length > 0) {
      process.stderr.write(
        `\n[axe] ${review.length} result(s) axe could not decide (review by hand; the contrasts above are measured):\n  ${review.join('\n  ')}\n`,
      );
    }
    const minor = findings.filter((f) => f.impact !== 'serious' && f.impact !== 'critical');
    if (minor.length > 0) {
      process.stderr.write(
        `\n[axe] ${minor.length} minor/moderate finding(s):\n${minor
          .map((f) => `  ${f.page}: ${f.rule} (${f.impact}) ${f.help} — ${f.targets.slice(0, 3).join(', ')}`)
          .join('\n')}\n`,
      );
    }
  });

  it('setup and sign-in pages', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await page.goto(`/setup#token=${SETUP_TOKEN}`);
    await page.getByRole('button', { name: 'Set up' }).waitFor();
    await audit(page, 'setup');

    const setup = await setupOwner(hush.t, OWNER);
    owner = setup.owner;
    ws = `/api/v1/workspaces/${setup.workspaceId}`;
    for (const [name, visibility] of [
      ['zendesk_token', 'masked'],
      ['crm_key', 'restricted'],
    ] as const) {
      const res = await owner.post(`${ws}/secrets`, { name, visibility, value: `value-of-${name}-0123456789` });
      expect(res.status, res.text).toBe(201);
    }
    const variable = await owner.post(`${ws}/variables`, { name: 'ticket_id', type: 'number', testValue: 42 });
    expect(variable.status, variable.text).toBe(201);
    const wf = await owner.post(`${ws}/workflows`, {
      name: 'Ticket lookup',
      startBlockId: 'find',
      blocks: [
        {
          id: 'find',
          type: 'api',
          name: 'Find ticket',
          method: 'GET',
          url: `${up.url}/api/v2/tickets/{{ticket_id}}`,
          query: [],
          headers: [{ key: 'Authorization', value: 'Bearer {{secret:zendesk_token}}' }],
          body: { mode: 'none' },
          timeoutMs: 10_000,
          capture: [{ variable: 'ticket_id', path: '$.ticket.id' }],
          onSuccess: null,
          onError: null,
        },
      ],
    });
    expect(wf.status, wf.text).toBe(201);
    const run = await owner.post(`${ws}/workflows/${wf.body.id}/runs`, { variables: {} });
    expect(run.status, run.text).toBe(201);

    await page.goto('/');
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await audit(page, 'sign-in');
    await context.close();
  });

  it('Variables: list, side panel open, delete modal', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await page.getByRole('rowheader', { name: 'zendesk_token' }).waitFor();
    await page.getByRole('rowheader', { name: 'ticket_id' }).waitFor();
    await audit(page, 'Variables');

    await page.getByRole('button', { name: 'Create New' }).click();
    await page.getByRole('dialog', { name: 'Create New' }).getByLabel('Value', { exact: true }).fill('short');
    await page.getByText('shorter than 8 characters').waitFor();
    await audit(page, 'Variables, Create New side panel');
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'hidden' });

    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'zendesk_token' }) });
    await row.getByRole('button', { name: 'Edit' }).click();
    await page.getByRole('dialog', { name: 'Edit secret zendesk_token' }).waitFor();
    await audit(page, 'Variables, Edit secret side panel');
    await expectContrast(page, 'Edit secret side panel', ['dialog[open] .hint', 'dialog[open] label']);
    await page.keyboard.press('Escape');

    await row.getByRole('button', { name: 'Reveal value' }).click();
    await row.getByRole('button', { name: 'Hide value' }).waitFor();
    await audit(page, 'Variables, value revealed');

    await row.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('list', { name: 'Blocks that use this secret' }).waitFor();
    await audit(page, 'Variables, Delete secret modal');
    await expectContrast(page, 'Delete secret modal', ['dialog[open] p', 'dialog[open] li']);
    await context.close();
  });

  it('Workflows: list, editor with a secret chip and the Add secret dropdown, response viewer', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'Workflows');
    await page.getByRole('link', { name: 'Ticket lookup' }).waitFor();
    await audit(page, 'Workflows');

    await page.getByRole('link', { name: 'Ticket lookup' }).click();
    await page.getByRole('button', { name: 'Remove secret zendesk_token' }).waitFor();
    await audit(page, 'Workflow editor');

    await page.getByRole('button', { name: 'Add secret' }).click();
    await page.getByRole('listbox', { name: 'Secrets' }).waitFor();
    await audit(page, 'Workflow editor, Add secret dropdown');
    // The search box spans the dropdown (the chip row's rule for its own field once squeezed it to 4rem).
    expect((await page.getByRole('combobox', { name: 'Search secrets' }).boundingBox())?.width).toBeGreaterThanOrEqual(
      300,
    );
    const timeout = await page.getByLabel('Timeout (ms)').getAttribute('id');
    await expectContrast(page, 'Add secret dropdown', [
      '#find-body-mode',
      `[id="${timeout}"]`,
      '.dropdown [role="combobox"]',
      '.dropdown [role="option"]',
      '.dropdown legend',
      '.dropdown button',
    ]);
    await page.getByRole('button', { name: 'Add secret' }).click();

    await page.getByRole('button', { name: 'Send request' }).click();
    await page
      .getByRole('region', { name: 'Response' })
      .getByRole('heading', { name: /^Status 200/ })
      .waitFor();
    await audit(page, 'Workflow editor, Send request result');
    await context.close();
  });

  it('Runs, Audit log, Members and API tokens', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await goTo(page, 'Runs');
    const runButton = page.getByRole('table').getByRole('button').first();
    await runButton.click();
    await page.getByRole('region', { name: 'Run detail' }).waitFor();
    await audit(page, 'Runs');

    await goTo(page, 'Audit log');
    await page.getByRole('cell', { name: 'secret.created', exact: true }).first().waitFor();
    await audit(page, 'Audit log');

    await goTo(page, 'Members');
    await page.getByRole('cell', { name: OWNER }).waitFor();
    await audit(page, 'Members');

    await goTo(page, 'API tokens');
    await page.getByLabel('Token name').fill('ci');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.getByRole('status').filter({ hasText: 'Copy it now' }).waitFor();
    await audit(page, 'API tokens');
    await context.close();
  });

  it('keyboard only: the side panel opens and closes, and Add secret picks a secret', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    const focusedName = () =>
      page.evaluate<string>(
        `document.activeElement?.getAttribute('aria-label') || document.activeElement?.textContent || ''`,
      );

    await page.getByRole('button', { name: 'Create New' }).focus();
    await page.keyboard.press('Enter');
    const panel = page.getByRole('dialog', { name: 'Create New' });
    await panel.waitFor();
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'hidden' });
    expect(await focusedName()).toBe('Create New');

    await goTo(page, 'Workflows');
    await page.getByRole('link', { name: 'Ticket lookup' }).click();
    await page.getByRole('button', { name: 'Remove secret zendesk_token' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Remove secret zendesk_token' }).waitFor({ state: 'detached' });
    // The WAI-ARIA combobox pattern: focus stays in the search box, arrows move the active option
    // (aria-activedescendant, aria-selected), Enter picks it, Escape closes; focus returns to the button.
    const activeOption = () =>
      page.evaluate<string>(
        `document.getElementById(document.activeElement?.getAttribute('aria-activedescendant') ?? '')?.textContent?.trim() ?? ''`,
      );
    const addSecret = page.getByRole('button', { name: 'Add secret' });
    await addSecret.focus();
    await page.keyboard.press('Enter');
    const listbox = page.getByRole('listbox', { name: 'Secrets' });
    await listbox.waitFor();
    expect(await focusedName()).toBe('Search secrets');
    expect(await page.getByRole('combobox', { name: 'Search secrets' }).getAttribute('aria-expanded')).toBe('true');
    expect(await activeOption()).toBe('crm_key');
    await page.keyboard.press('ArrowDown');
    expect(await activeOption()).toBe('zendesk_token');
    expect(await listbox.getByRole('option', { selected: true }).textContent()).toContain('zendesk_token');
    await page.keyboard.press('ArrowDown'); // stays on the last option
    expect(await activeOption()).toBe('zendesk_token');
    await page.keyboard.press('Home');
    expect(await activeOption()).toBe('crm_key');
    await page.keyboard.press('Escape');
    await listbox.waitFor({ state: 'detached' });
    expect(await focusedName()).toBe('Add secret');
    expect(await page.getByRole('button', { name: /^Remove secret/ }).count()).toBe(0);

    await page.keyboard.press('Enter');
    await listbox.waitFor();
    await page.keyboard.type('zendesk');
    expect(await listbox.getByRole('option').allTextContents()).toEqual([expect.stringContaining('zendesk_token')]);
    expect(await activeOption()).toBe('zendesk_token');
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Remove secret zendesk_token' }).waitFor();
    await listbox.waitFor({ state: 'detached' });
    expect(await focusedName()).toBe('Add secret');
    await context.close();
  });

  it('the contrast measure composites translucent backgrounds, through a modal dialog to its backdrop', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await page.setContent(`<html style="background: #f7f7fb"><head><style>dialog::backdrop { background: rgb(20 20 40 / 35%) }</style></head><body>
      <div style="background: #fff"><div style="background: rgb(0 0 0 / 50%)">
        <span id="a" style="color: rgb(255 255 255 / 80%); font-size: 24px">over half-black</span></div></div>
      <dialog style="background: transparent"><p id="b" style="color: #5d6072; font-weight: 700; font-size: 19px">in a see-through dialog</p></dialog>
    </body></html>`);
    await page.evaluate(`document.querySelector('dialog').showModal()`);
    const [a, b] = await measureContrast(page, ['#a', '#b']);
    // Worked by hand: 50% black over white is rgb(127.5 …); 80% white over that 229.5; a ratio of 3.17.
    expect(a).toMatchObject({ background: 'rgb(128, 128, 128)', ratio: 3.17, large: true, required: 3 });
    // The backdrop (35% of rgb(20 20 40)) over #f7f7fb is rgb(167.55 167.55 177.15); #5d6072 on it 2.62; bold 19 px is large.
    expect(b).toMatchObject({ background: 'rgb(168, 168, 177)', ratio: 2.62, large: true, required: 3 });
    expect(b?.layers).toEqual(['dialog::backdrop: rgb(20, 20, 40) / 0.35', 'html: rgb(247, 247, 251)']);
    await context.close();
  });

  it('at 200% zoom (a 640 × 360 viewport) nothing scrolls sideways and the controls stay whole and usable', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl, { viewport: { width: 640, height: 360 } });
    await signIn(page, OWNER);
    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'zendesk_token' }) });
    await row.waitFor();
    expect(await overflow(page)).toEqual({ page: 0, content: 0 });
    for (const name of ['Create New', 'Reveal value', 'Edit', 'Delete']) {
      const button = name === 'Create New' ? page.getByRole('button', { name }) : row.getByRole('button', { name });
      expect(await inside(button), name).toBe(true);
    }

    await row.getByRole('button', { name: 'Edit' }).click();
    const panel = page.getByRole('dialog', { name: 'Edit secret zendesk_token' });
    for (const control of [panel.getByRole('button', { name: 'Close' }), panel.getByLabel('Value', { exact: true })]) {
      expect(await inside(control)).toBe(true);
    }
    await page.keyboard.press('Escape');
    await row.getByRole('button', { name: 'Delete' }).click();
    const modal = page.getByRole('dialog', { name: 'Delete secret' });
    await modal.getByRole('list', { name: 'Blocks that use this secret' }).waitFor();
    const confirm = modal.getByRole('button', { name: 'Delete' });
    await confirm.scrollIntoViewIfNeeded();
    const box = await confirm.boundingBox();
    expect(box && box.y + box.height <= 360 && box.x + box.width <= 640, 'the Delete button shows whole').toBe(true);
    await page.keyboard.press('Escape');

    await goTo(page, 'Workflows');
    await page.getByRole('link', { name: 'Ticket lookup' }).click();
    await page.getByRole('button', { name: 'Remove secret zendesk_token' }).waitFor();
    expect(await overflow(page)).toEqual({ page: 0, content: 0 });
    for (const control of [
      page.getByRole('button', { name: 'Save workflow' }),
      page.getByLabel('URL'),
      page.getByRole('button', { name: 'Add secret' }),
      page.getByRole('button', { name: 'Send request' }),
    ]) {
      expect(await inside(control), String(control)).toBe(true);
    }
    await page.getByRole('button', { name: 'Add secret' }).click();
    const search = page.getByRole('combobox', { name: 'Search secrets' });
    expect(await inside(search)).toBe(true);
    // Wide enough to read what one types (it was 4rem: the chip row's rule for its own field reached it).
    expect((await search.boundingBox())?.width).toBeGreaterThanOrEqual(200);
    expect(await inside(page.getByRole('listbox', { name: 'Secrets' }))).toBe(true);
    await context.close();
  });

  it('at 640 × 360 a modal fits the screen: a secret used by many blocks can still be deleted', async () => {
    const secret = await owner.post(`${ws}/secrets`, {
      name: 'shared_key',
      visibility: 'masked',
      value: 'value-of-shared_key-0123456789',
    });
    expect(secret.status, secret.text).toBe(201);
    for (const n of [1, 2, 3]) {
      const blocks = [1, 2, 3, 4, 5].map((b) => ({
        id: `b${b}`,
        type: 'api',
        name: `Call ${b}`,
        method: 'GET',
        url: `${up.url}/api/${b}`,
        query: [],
        headers: [{ key: 'Authorization', value: 'Bearer {{secret:shared_key}}' }],
        body: { mode: 'none' },
        timeoutMs: 10_000,
        capture: [],
        onSuccess: null,
        onError: null,
      }));
      const wf = await owner.post(`${ws}/workflows`, { name: `Shared ${n}`, startBlockId: 'b1', blocks });
      expect(wf.status, wf.text).toBe(201);
    }
    const { context, page } = await openPage(browser, hush.baseUrl, { viewport: { width: 640, height: 360 } });
    await signIn(page, OWNER);
    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'shared_key' }) });

    // The side panel scrolls on its own, under its Save button, which stays in view.
    await row.getByRole('button', { name: 'Edit' }).click();
    const panel = page.getByRole('dialog', { name: 'Edit secret shared_key' });
    const save = panel.getByRole('button', { name: 'Save' });
    await panel.getByLabel('Value').waitFor();
    expect(await onScreen(save), "the side panel's Save button, at the top of the form").toBe(true);
    await panel.getByLabel('Description').focus();
    expect(await onScreen(save), "the side panel's Save button, midway").toBe(true);
    await save.scrollIntoViewIfNeeded();
    expect(await onScreen(save), "the side panel's Save button, at the end").toBe(true);
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'hidden' });

    await row.getByRole('button', { name: 'Delete' }).click();
    const modal = page.getByRole('dialog', { name: 'Delete secret' });
    const list = modal.getByRole('list', { name: 'Blocks that use this secret' });
    await list.waitFor();
    expect(await list.getByRole('listitem').count()).toBe(15);
    // The modal stays inside the screen, its list scrolls, and its buttons stay in view.
    expect(await onScreen(modal.getByRole('heading', { name: 'Delete secret' })), 'the title').toBe(true);
    expect(await onScreen(modal.getByRole('button', { name: 'Cancel' })), 'Cancel').toBe(true);
    const confirm = modal.getByRole('button', { name: 'Delete' });
    expect(await onScreen(confirm), 'Delete').toBe(true);
    await confirm.click();
    await page.getByRole('status').filter({ hasText: 'shared_key' }).waitFor();
    await row.waitFor({ state: 'detached' });
    await context.close();
  });

  it('at 640 × 360 a long secret name and description wrap: the page does not scroll sideways', async () => {
    const name = `s${'long_name_'.repeat(7)}`.slice(0, 64);
    const description = 'https://example.com/'.concat('docs/a-very-long-path-without-spaces/'.repeat(13)).slice(0, 500);
    expect([name.length, description.length]).toEqual([64, 500]);
    const res = await owner.post(`${ws}/secrets`, {
      name,
      description,
      visibility: 'masked',
      value: 'value-of-the-long-one-0123456789',
    });
    expect(res.status, res.text).toBe(201);
    const { context, page } = await openPage(browser, hush.baseUrl, { viewport: { width: 640, height: 360 } });
    await signIn(page, OWNER);
    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name }) });
    await row.waitFor();
    expect(await overflow(page)).toEqual({ page: 0, content: 0 });
    for (const control of ['Reveal value', 'Edit', 'Delete']) {
      expect(await inside(row.getByRole('button', { name: control })), control).toBe(true);
    }
    expect(await inside(page.getByRole('button', { name: 'Create New' }))).toBe(true);
    await context.close();
  });

  it('at 640 × 360 Runs (with a run open), Audit log, Members and API tokens do not scroll sideways', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl, { viewport: { width: 640, height: 360 } });
    await signIn(page, OWNER);
    await goTo(page, 'Runs');
    await page.getByLabel('Workflow').selectOption({ label: 'Ticket lookup' });
    const runButton = page.getByRole('table').getByRole('button').first();
    await runButton.click();
    await page.getByRole('region', { name: 'Run detail' }).waitFor();
    expect(await overflow(page), 'Runs').toEqual({ page: 0, content: 0 });
    for (const control of [page.getByRole('button', { name: 'Run now' }), page.getByLabel('Workflow'), runButton]) {
      expect(await inside(control), `Runs: ${control}`).toBe(true);
    }

    await goTo(page, 'Audit log');
    await page.getByRole('cell', { name: 'secret.created', exact: true }).first().waitFor();
    expect(await overflow(page), 'Audit log').toEqual({ page: 0, content: 0 });
    for (const control of [
      page.getByRole('link', { name: 'Export CSV' }),
      page.getByLabel('Action'),
      page.getByLabel('Who'),
      page.getByLabel('From'),
      page.getByLabel('To', { exact: true }),
      page.getByRole('button', { name: 'Verify chain' }),
    ]) {
      expect(await inside(control), `Audit log: ${control}`).toBe(true);
    }

    await goTo(page, 'Members');
    await page.getByRole('cell', { name: OWNER }).waitFor();
    expect(await overflow(page), 'Members').toEqual({ page: 0, content: 0 });
    for (const control of [
      page.getByLabel('Invite email'),
      page.getByLabel('Invite role'),
      page.getByRole('button', { name: 'Invite' }),
    ]) {
      expect(await inside(control), `Members: ${control}`).toBe(true);
    }

    await goTo(page, 'API tokens');
    await page.getByLabel('Token name').fill('narrow');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.getByRole('status').filter({ hasText: 'Copy it now' }).waitFor();
    expect(await overflow(page), 'API tokens').toEqual({ page: 0, content: 0 });
    for (const control of [
      page.getByLabel('Token name'),
      page.getByLabel('Token workspace'),
      page.getByLabel('Expires in days'),
      page.getByRole('button', { name: 'Create token' }),
      page.getByRole('row').filter({ hasText: 'narrow' }).getByRole('button', { name: 'Revoke' }),
    ]) {
      expect(await inside(control), `API tokens: ${control}`).toBe(true);
    }
    await context.close();
  });

  it('no page has a serious or critical violation', () => {
    expect(checked).toHaveLength(15);
    const severe = findings.filter((f) => f.impact === 'serious' || f.impact === 'critical');
    expect(severe).toEqual([]);
  });
});
