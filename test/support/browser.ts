/**
 * What the browser tests share: Debian's Chromium driven by playwright-core
 * (mandatory under CI=true, else skipped with a notice on stderr), a real
 * Hush listening on 127.0.0.1 that serves the built UI (dist/web), sign-in
 * through the UI, a recorder of every response body a page receives, and a
 * search of the whole DOM (every frame, every field's value) for values.
 */
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page, type Response } from 'playwright-core';
import { LeakSearch } from './canary.js';
import { PASSWORD, startTestApp, type TestApp } from './harness.js';

export const CHROMIUM_PATH = process.env.HUSH_CHROMIUM_PATH ?? '/usr/bin/chromium';
const WEB_INDEX = path.resolve(import.meta.dirname, '../../dist/web/index.html');

const LAUNCH_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Whether the browser tests of `suite` can run. Under CI=true a missing
 * Chromium is a failure (this throws while the test file loads); elsewhere
 * the suite is skipped and says so on stderr.
 */
export function browserAvailable(suite: string): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  if (process.env.CI === 'true') {
    throw new Error(
      `Browser tests are mandatory under CI=true, but ${CHROMIUM_PATH} is missing (apt-get install chromium).`,
    );
  }
  process.stderr.write(
    `\n[browser tests] SKIPPED "${suite}": ${CHROMIUM_PATH} is missing. ` +
      'Install Debian chromium to run them; under CI=true they are mandatory.\n',
  );
  return false;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: LAUNCH_ARGS });
}

export interface BrowserApp {
  t: TestApp;
  /** http://127.0.0.1:PORT — where the browser reaches Hush. */
  baseUrl: string;
  close(): Promise<void>;
}

/** A real Hush on SQLite, listening on an ephemeral port and serving the built UI. */
export async function startBrowserApp(env: Record<string, string> = {}): Promise<BrowserApp> {
  // The server registers the UI only if it is built when the app is assembled.
  if (!existsSync(WEB_INDEX)) {
    throw new Error('dist/web/index.html is missing: build the UI first (npx vite build; npm test does it).');
  }
  const t = await startTestApp('sqlite', env);
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as AddressInfo;
  return { t, baseUrl: `http://127.0.0.1:${port}`, close: () => t.close() };
}

export interface Recorded {
  method: string;
  url: string;
  status: number;
  headers: Record<string, string>;
  /** null when the browser keeps no body (redirects, downloads): see bodyError. */
  body: Buffer | null;
  bodyError?: string;
}

/** Every response the pages of one context receive, body included. */
export class NetworkLog {
  private readonly pending: Promise<Recorded>[] = [];

  constructor(context: BrowserContext) {
    context.on('response', (response) => {
      // Ask for the body at once: the browser may drop it after a navigation.
      this.pending.push(NetworkLog.record(response));
    });
  }

  private static async record(response: Response): Promise<Recorded> {
    const request = response.request();
    const status = response.status();
    const recorded: Recorded = {
      method: request.method(),
      url: response.url(),
      status,
      headers: await response.allHeaders().catch(() => response.headers()),
      body: null,
    };
    if (status >= 300 && status < 400) return recorded;
    try {
      recorded.body = await response.body();
    } catch (err) {
      recorded.bodyError = err instanceof Error ? err.message.split('\n')[0] : String(err);
    }
    return recorded;
  }

  /** Everything received so far, once every body has been read. */
  all(): Promise<Recorded[]> {
    return Promise.all(this.pending);
  }
}

/** The path of a URL below /api/v1, or undefined for other URLs. */
export function apiPath(url: string): string | undefined {
  const p = new URL(url).pathname;
  return p.startsWith('/api/v1/') ? p.slice('/api/v1'.length) : undefined;
}

/** POST …/secrets/{id}/reveal — the one response that may carry a value. */
export function isRevealResponse(r: Recorded): boolean {
  return r.method === 'POST' && /\/secrets\/[^/]+\/reveal$/.test(apiPath(r.url) ?? '');
}

/** Responses whose body could not be read (other than redirects): a leak search cannot vouch for them. */
export function unreadBodies(log: Recorded[]): string[] {
  return log.filter((r) => r.bodyError !== undefined).map((r) => `${r.method} ${r.url}: ${r.bodyError}`);
}

/** Searches bodies and headers of recorded responses (all but reveals) for every form of `values`. */
export function leaksInNetwork(log: Recorded[], values: Record<string, string>): LeakSearch {
  const search = new LeakSearch(values);
  for (const r of log) {
    if (isRevealResponse(r)) continue;
    search.scan(`${r.method} ${r.url} headers`, JSON.stringify(r.headers));
    if (r.body) search.scan(`${r.method} ${r.url} body`, r.body);
  }
  return search;
}

/**
 * The page as text, three ways: the serialized DOM of every frame, its
 * rendered text, and the current value of every form field (which
 * page.content() does not serialize).
 */
export async function domTexts(page: Page): Promise<{ where: string; text: string }[]> {
  const out: { where: string; text: string }[] = [];
  for (const [i, frame] of page.frames().entries()) {
    const where = `frame ${i} (${frame.url()})`;
    out.push({ where: `${where} html`, text: await frame.content() });
    out.push({
      where: `${where} text and fields`,
      text: await frame.evaluate<string>(
        `[document.body ? document.body.innerText : '', ...Array.from(document.querySelectorAll('input, textarea, select'), (e) => e.value)].join('\\n')`,
      ),
    });
  }
  return out;
}

/** Searches the DOM of the page (see domTexts) for every form of `values`. */
export async function leaksInDom(page: Page, values: Record<string, string>): Promise<LeakSearch> {
  const search = new LeakSearch(values);
  for (const { where, text } of await domTexts(page)) search.scan(where, text);
  return search;
}

export interface OpenedPage {
  context: BrowserContext;
  page: Page;
  network: NetworkLog;
}

/** A fresh context (no cookies, no storage) and one page in it, with its network recorded. */
export async function openPage(
  browser: Browser,
  baseUrl: string,
  options: { clipboard?: boolean; viewport?: { width: number; height: number } } = {},
): Promise<OpenedPage> {
  const context = await browser.newContext({
    baseURL: baseUrl,
    viewport: options.viewport ?? { width: 1280, height: 800 },
    acceptDownloads: true,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  if (options.clipboard) {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseUrl });
  }
  context.setDefaultTimeout(10_000);
  const network = new NetworkLog(context);
  const page = await context.newPage();
  return { context, page, network };
}

/** Signs in through the login page and waits for the workspace shell. */
export async function signIn(page: Page, email: string, password = PASSWORD): Promise<void> {
  await page.goto('/');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Variables' }).waitFor();
}

/** Follows a main navigation link and waits for the page's heading. */
export async function goTo(
  page: Page,
  link: 'Variables' | 'Workflows' | 'Runs' | 'Audit log' | 'Members' | 'API tokens',
): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: link, exact: true }).waitFor();
}
