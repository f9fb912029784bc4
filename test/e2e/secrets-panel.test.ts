/**
 * The Variables Management Panel in a real browser (SPEC §5): first-run setup
 * and sign-in through the pages; an Owner creates a masked and a restricted
 * secret in the side panel; neither value appears in the DOM (any frame, any
 * field), on the clipboard, or in any response body but a reveal's; the eye
 * shows the masked value until "Hide value" or for 20 s (a fake clock), and
 * restricted rows have no eye at all.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrowserApp,
  browserAvailable,
  isRevealResponse,
  launchBrowser,
  leaksInDom,
  leaksInNetwork,
  openPage,
  signIn,
  startBrowserApp,
  unreadBodies,
} from '../support/browser.js';
import { LeakSearch, makeCanary } from '../support/canary.js';
import { PASSWORD, SETUP_TOKEN } from '../support/harness.js';

const SUITE = 'Variables panel: setup, sign-in, masked and restricted secrets';
const OWNER = 'owner@example.com';
const MASKED = 'zendesk_token';
const RESTRICTED = 'crm_key';
const values = { masked: makeCanary('masked'), restricted: makeCanary('restricted') };

/** The table row of the secret called `name`. */
const secretRow = (page: Page, name: string) =>
  page.getByRole('row').filter({ has: page.getByRole('rowheader', { name, exact: true }) });

async function createSecret(
  page: Page,
  s: { name: string; value: string; visibility: 'Masked' | 'Restricted'; description: string; hosts: string },
): Promise<void> {
  await page.getByRole('button', { name: 'Create New' }).click();
  const panel = page.getByRole('dialog', { name: 'Create New' });
  await panel.getByLabel('Name', { exact: true }).fill(s.name);
  await panel.getByRole('radio', { name: s.visibility }).check();
  await panel.getByLabel('Value', { exact: true }).fill(s.value);
  // The typed value lives in the field only, not in the serialized DOM (no `value` attribute).
  const typed = new LeakSearch({ value: s.value });
  typed.scan('serialized DOM while typing', await page.content());
  expect(typed.hits).toEqual([]);
  expect(await panel.getByLabel('Value', { exact: true }).inputValue()).toBe(s.value);
  await panel.getByLabel('Description', { exact: true }).fill(s.description);
  await panel.getByLabel('Allowed hosts', { exact: true }).fill(s.hosts);
  await panel.getByRole('button', { name: 'Save' }).click();
  await panel.waitFor({ state: 'hidden' });
  await secretRow(page, s.name).waitFor();
}

const enabled = browserAvailable(SUITE);

describe.runIf(enabled)(SUITE, () => {
  let browser: Browser;
  let hush: BrowserApp;

  beforeAll(async () => {
    [browser, hush] = await Promise.all([launchBrowser(), startBrowserApp()]);
  });
  afterAll(async () => {
    await browser?.close();
    await hush?.close();
  });

  it('first-run setup takes the token from #token= in the URL; the owner signs out and back in', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await page.goto(`/setup#token=${encodeURIComponent(SETUP_TOKEN)}`);
    expect(await page.getByLabel('Setup token').inputValue()).toBe(SETUP_TOKEN);
    await page.getByLabel('Email').fill(OWNER);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('Your name').fill('Olivia Owner');
    await page.getByLabel('Workspace name').fill('Acme');
    await page.getByRole('button', { name: 'Set up' }).click();
    await page.getByRole('heading', { level: 1, name: 'Variables' }).waitFor();
    // The token has left the address bar.
    expect(page.url()).not.toContain(SETUP_TOKEN);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await signIn(page, OWNER);
    await page.getByRole('heading', { level: 1, name: 'Variables' }).waitFor();
    expect(new URL(page.url()).pathname).toMatch(/^\/w\/[^/]+\/variables$/);
    await context.close();
  });

  it('an owner creates a masked and a restricted secret; no value reaches the DOM, the clipboard or a response', async () => {
    const { context, page, network } = await openPage(browser, hush.baseUrl, { clipboard: true });
    await signIn(page, OWNER);
    await createSecret(page, {
      name: MASKED,
      value: values.masked,
      visibility: 'Masked',
      description: 'Zendesk API token',
      hosts: 'acme.zendesk.com',
    });
    await createSecret(page, {
      name: RESTRICTED,
      value: values.restricted,
      visibility: 'Restricted',
      description: 'CRM key',
      hosts: 'api.crm.example\n*.crm.example',
    });
    await expect(secretRow(page, MASKED).textContent()).resolves.toContain('acme.zendesk.com');
    await expect(secretRow(page, RESTRICTED).textContent()).resolves.toContain('secret · restricted');

    expect((await leaksInDom(page, values)).hits).toEqual([]);

    // The dots: the same fixed row for both secrets, dots only, not selectable.
    const dots = await page.evaluate<{ text: string; userSelect: string }[]>(
      `Array.from(document.querySelectorAll('.dots'), (e) => ({ text: e.textContent, userSelect: getComputedStyle(e).userSelect }))`,
    );
    expect(dots).toHaveLength(2);
    for (const d of dots) {
      expect(d.text).toMatch(/^•+$/);
      expect(d.text).toBe(dots[0]?.text);
      expect(d.userSelect).toBe('none');
    }

    // Try to copy the dots row three ways; the clipboard never gets a value (nor the dots).
    const clipboardAfter = async (select: () => Promise<void>) => {
      await page.evaluate(`navigator.clipboard.writeText('clipboard-sentinel')`);
      await select();
      await page.keyboard.press('ControlOrMeta+C');
      return page.evaluate<string>('navigator.clipboard.readText()');
    };
    const valueCell = secretRow(page, MASKED).getByRole('cell').nth(1);
    const copies: string[] = [
      await clipboardAfter(() => valueCell.click({ clickCount: 3 })),
      await clipboardAfter(() => secretRow(page, MASKED).locator('.dots').selectText({ force: true })),
      await clipboardAfter(async () => {
        await page.getByRole('heading', { level: 1, name: 'Variables' }).click();
        await page.keyboard.press('ControlOrMeta+A');
      }),
    ];
    // Select-all did copy the page, so the copy attempts really reached the clipboard.
    expect(copies[2]).toContain(MASKED);
    const clipboard = new LeakSearch(values);
    for (const [i, text] of copies.entries()) {
      clipboard.scan(`copy attempt ${i + 1}`, text);
      expect(text).not.toContain('•');
    }
    expect(clipboard.hits).toEqual([]);

    const log = await network.all();
    expect(log.some((r) => r.method === 'POST' && r.url.endsWith('/secrets') && r.status === 201)).toBe(true);
    expect(unreadBodies(log)).toEqual([]);
    expect(leaksInNetwork(log, values).hits).toEqual([]);
    await context.close();
  });

  it('the eye reveals the masked value; "Hide value" hides it, and so do 20 seconds', async () => {
    const { context, page, network } = await openPage(browser, hush.baseUrl);
    await page.clock.install();
    await signIn(page, OWNER);
    const row = secretRow(page, MASKED);
    const revealed = row.getByText(values.masked, { exact: true });

    await row.getByRole('button', { name: 'Reveal value' }).click();
    await revealed.waitFor();
    // While shown, the DOM search finds it (so its silence elsewhere means something).
    expect((await leaksInDom(page, values)).hits.map((h) => h.canary)).toContain('masked');
    await row.getByRole('button', { name: 'Hide value' }).click();
    await revealed.waitFor({ state: 'detached' });
    await row.getByRole('button', { name: 'Reveal value' }).waitFor();
    expect((await leaksInDom(page, values)).hits).toEqual([]);

    await row.getByRole('button', { name: 'Reveal value' }).click();
    await revealed.waitFor();
    await page.clock.fastForward(15_000);
    expect(await revealed.count()).toBe(1);
    await page.clock.fastForward(6_000);
    await revealed.waitFor({ state: 'detached' });
    await row.getByRole('button', { name: 'Reveal value' }).waitFor();
    expect(await row.getByRole('img', { name: 'Hidden value' }).count()).toBe(1);
    expect((await leaksInDom(page, values)).hits).toEqual([]);

    // The value travelled only in the two reveal responses.
    const log = await network.all();
    const reveals = log.filter(isRevealResponse);
    expect(reveals.map((r) => r.status)).toEqual([200, 200]);
    for (const r of reveals) expect(JSON.parse(String(r.body))).toEqual({ value: values.masked });
    expect(unreadBodies(log)).toEqual([]);
    expect(leaksInNetwork(log, values).hits).toEqual([]);
    await context.close();
  });

  it('a restricted row shows a lock and no eye', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    const restricted = secretRow(page, RESTRICTED);
    await restricted.getByRole('img', { name: 'Restricted: never revealed' }).waitFor();
    expect(await restricted.getByRole('button', { name: 'Reveal value' }).count()).toBe(0);
    expect(await restricted.getByRole('button', { name: 'Hide value' }).count()).toBe(0);
    // The owner manages both, and only the masked one has an eye.
    expect(await page.getByRole('button', { name: 'Reveal value' }).count()).toBe(1);
    expect(await restricted.getByRole('button', { name: 'Edit' }).count()).toBe(1);
    await context.close();
  });

  it('search waits for typing to pause, and a slow answer to an earlier search never replaces a later one', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await secretRow(page, RESTRICTED).waitFor();
    const searches: string[] = [];
    // Answers to a search for "zen" come late.
    await page.route(
      (url) => url.pathname.endsWith('/secrets') && url.searchParams.has('q'),
      async (route) => {
        const q = new URL(route.request().url()).searchParams.get('q') ?? '';
        searches.push(q);
        if (q === 'zen') await new Promise((r) => setTimeout(r, 1500));
        await route.continue();
      },
    );
    const search = page.getByRole('searchbox', { name: 'Search' });

    // Typing letter by letter asks once, for what was typed.
    await search.pressSequentially('crm_k', { delay: 30 });
    await expect.poll(() => searches).toContain('crm_k');
    await secretRow(page, MASKED).waitFor({ state: 'detached' });
    expect(searches.filter((q) => q !== 'crm_k')).toEqual([]);

    // "zen" is asked (its answer is slow), then "crm": the late "zen" answer is dropped.
    await search.fill('zen');
    await expect.poll(() => searches).toContain('zen');
    await search.fill('crm');
    await expect.poll(() => searches).toContain('crm');
    await secretRow(page, RESTRICTED).waitFor();
    await page.waitForTimeout(2000); // past the slow answer
    expect(await secretRow(page, MASKED).count()).toBe(0);
    await secretRow(page, RESTRICTED).waitFor();
    await context.close();
  });

  it('a refused form shows each message once, at its field, without the request path', async () => {
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await page.getByRole('button', { name: 'Create New' }).click();
    const panel = page.getByRole('dialog', { name: 'Create New' });
    const atField = (label: string) =>
      panel
        .locator('.field')
        .filter({ has: page.getByLabel(label, { exact: true }) })
        .getByRole('alert');
    const alerts = async () => {
      const texts = await panel.getByRole('alert').allTextContents();
      for (const text of texts) expect(text).not.toMatch(/body\./);
      return texts;
    };
    await panel.getByLabel('Name', { exact: true }).fill('not a name!');
    await panel.getByLabel('Value', { exact: true }).fill('some-long-enough-value');
    await panel.getByRole('button', { name: 'Save' }).click();
    await atField('Name').waitFor();
    expect(await alerts()).toHaveLength(1);

    // A bad host, on the second line: said at the Allowed hosts field, naming the entry.
    await panel.getByLabel('Name', { exact: true }).fill('form_errors_key');
    await panel.getByLabel('Allowed hosts', { exact: true }).fill('api.example.com\nhttps://api.example.com/path');
    await panel.getByRole('button', { name: 'Save' }).click();
    await atField('Allowed hosts').waitFor();
    expect(await atField('Allowed hosts').textContent()).toMatch(/^Entry 2: /);
    expect(await alerts()).toHaveLength(1);
    await context.close();
  });

  it('an edit refused as stale (412) shows their version, keeps the typed value, and saves on the next try', async () => {
    const api = hush.t.client();
    expect((await api.post('/api/v1/auth/login', { email: OWNER, password: PASSWORD })).status).toBe(200);
    const wsId = (await api.get('/api/v1/me')).body.workspaces[0].id as string;
    const ws = `/api/v1/workspaces/${wsId}`;
    const made = await api.post(`${ws}/secrets`, {
      name: 'conflict_key',
      visibility: 'masked',
      value: 'conflict-first-value-0123',
      description: 'first',
    });
    expect(made.status, made.text).toBe(201);

    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await secretRow(page, 'conflict_key').getByRole('button', { name: 'Edit' }).click();
    const panel = page.getByRole('dialog', { name: 'Edit secret conflict_key' });
    const typed = 'conflict-typed-in-the-ui-4567';
    await panel.getByLabel('Value', { exact: true }).fill(typed);
    // Someone else saves meanwhile.
    const other = await api.patch(`${ws}/secrets/${made.body.id}`, { description: 'changed elsewhere' });
    expect(other.status, other.text).toBe(200);

    await panel.getByRole('button', { name: 'Save' }).click();
    await panel.getByRole('alert').filter({ hasText: 'Someone else changed this secret' }).waitFor();
    expect(await panel.getByLabel('Description', { exact: true }).inputValue()).toBe('changed elsewhere');
    expect(await panel.getByLabel('Value', { exact: true }).inputValue()).toBe(typed);

    await panel.getByRole('button', { name: 'Save' }).click();
    await panel.waitFor({ state: 'hidden' });
    const stored = (await api.get(`${ws}/secrets/${made.body.id}`)).body;
    expect(stored.description).toBe('changed elsewhere');
    expect(stored.version).toBe(2);
    expect((await api.post(`${ws}/secrets/${made.body.id}/reveal`, {})).body.value).toBe(typed);
    await context.close();
  });

  it('a value over the 64 KiB limit (a 2 MB paste) is refused in the field, at once; nothing is sent', async () => {
    const { context, page, network } = await openPage(browser, hush.baseUrl, { clipboard: true });
    await signIn(page, OWNER);
    await page.getByRole('button', { name: 'Create New' }).click();
    const panel = page.getByRole('dialog', { name: 'Create New' });
    await panel.getByText('At most 64 KiB.').waitFor(); // said before anything is typed
    await panel.getByLabel('Name', { exact: true }).fill('too_big');
    const field = panel.getByLabel('Value', { exact: true });
    await field.fill('kept-value-0123456789');
    // A real paste of 2 MB from the clipboard: refused before it is inserted, so the tab stays responsive.
    const big = 'x'.repeat(2 * 1024 * 1024);
    await page.evaluate(`navigator.clipboard.writeText('x'.repeat(${big.length}))`);
    const started = Date.now();
    await field.focus();
    await page.keyboard.press('ControlOrMeta+V');
    await panel.getByRole('alert').filter({ hasText: 'at most 64 KiB' }).waitFor();
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await field.inputValue()).toBe('kept-value-0123456789');
    expect(
      await panel
        .getByRole('alert')
        .filter({ hasText: /Not kept: that is 2,04\d KiB/ })
        .count(),
    ).toBe(1);
    expect(
      (await network.all()).filter((r) => r.method === 'POST' && r.url.endsWith('/secrets')).map((r) => r.url),
    ).toEqual([]);
    // A paste over a selection counts what the field will hold: 40,000 over 40,000 fits.
    await field.fill('y'.repeat(40_000));
    await page.evaluate(`navigator.clipboard.writeText('z'.repeat(40000))`);
    await field.focus();
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.press('ControlOrMeta+V');
    await expect.poll(() => field.inputValue()).toBe('z'.repeat(40_000));
    // A value under the limit saves.
    await field.fill('x'.repeat(16 * 1024));
    await panel.getByRole('button', { name: 'Save' }).click();
    await panel.waitFor({ state: 'hidden' });
    await secretRow(page, 'too_big').waitFor();
    await context.close();
  });

  it('a multi-line value (a PEM key) is kept as pasted and revealed as it is; the value is never React state', async () => {
    const pem = `-----BEGIN PRIVATE KEY-----\n${makeCanary('pemline')}\n\t  indented ${makeCanary('pemtab')}\n-----END PRIVATE KEY-----`;
    const { context, page } = await openPage(browser, hush.baseUrl);
    await signIn(page, OWNER);
    await createSecret(page, {
      name: 'signing_key',
      value: pem,
      visibility: 'Masked',
      description: 'a key of several lines',
      hosts: 'sign.example',
    });
    // Not a password field (a password manager would offer to save it), shown as dots.
    await page.getByRole('button', { name: 'Create New' }).click();
    const field = page.getByRole('dialog', { name: 'Create New' }).getByLabel('Value', { exact: true });
    expect(await field.evaluate((e) => [e.tagName, e.getAttribute('type'), e.getAttribute('autocomplete')])).toEqual([
      'TEXTAREA',
      null,
      'off',
    ]);
    await page.keyboard.press('Escape');

    const row = secretRow(page, 'signing_key');
    await row.getByRole('button', { name: 'Reveal value' }).click();
    await row.getByRole('button', { name: 'Hide value' }).waitFor();
    const shown = row.locator('code.revealed');
    expect(
      await shown.evaluate((e) => [e.textContent, e.ownerDocument.defaultView?.getComputedStyle(e).whiteSpace]),
    ).toEqual([pem, 'pre-wrap']);
    // Not in React's component tree (state, props, the previous render's copies), shown or hidden.
    const inReact = (value: string) =>
      page.evaluate<boolean>(`(() => {
        const v = ${JSON.stringify(value)};
        const root = document.getElementById('root');
        const start = root[Object.keys(root).find((k) => k.startsWith('__reactContainer$'))];
        const seen = new Set();
        const stack = [start];
        while (stack.length > 0) {
          const x = stack.pop();
          if (typeof x === 'string') {
            if (x.includes(v)) return true;
            continue;
          }
          if (x === null || typeof x !== 'object' || seen.has(x) || x instanceof Node) continue;
          seen.add(x);
          for (const [k, child] of Object.entries(x)) if (k !== 'return' && k !== '_owner') stack.push(child);
        }
        return false;
      })()`);
    // The search does find what React holds (the row's secret name), so its silence means something.
    expect(await inReact('signing_key')).toBe(true);
    expect(await inReact(pem)).toBe(false);
    await row.getByRole('button', { name: 'Hide value' }).click();
    await row.getByRole('button', { name: 'Reveal value' }).waitFor();
    expect(await shown.evaluate((e) => e.textContent)).toBe('');
    expect(await inReact(pem)).toBe(false);
    await context.close();
  });

  it('the server logged no form of either value', () => {
    const logs = new LeakSearch(values);
    logs.scan('server log', hush.t.logs.join('\n'));
    expect(logs.places).toBe(1);
    expect(logs.hits).toEqual([]);
  });
});
