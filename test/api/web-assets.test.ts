/**
 * The web UI's files as `serve` answers them: app routes get index.html, bundle files
 * their content with a long cache, a bundle file built after start-up (a rebuild under a
 * running server) is served too, and a missing one is a 404 — never index.html, which a
 * browser would take for the script and show a blank page.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/harness.js';

const WEB_ROOT = path.resolve(import.meta.dirname, '../../dist/web');
const built = existsSync(path.join(WEB_ROOT, 'index.html'));
if (!built) {
  if (process.env.CI === 'true') throw new Error('dist/web is not built: `npm test` builds it first (pretest).');
  process.stderr.write('\n[web assets] dist/web is not built (npm test builds it first): SKIPPED.\n');
}

describe.runIf(built)('web UI files', () => {
  let t: TestApp;
  const late = `late-${randomBytes(6).toString('hex')}.js`;
  beforeAll(async () => {
    t = await startTestApp('sqlite');
  });
  afterAll(async () => {
    rmSync(path.join(WEB_ROOT, 'assets', late), { force: true });
    await t?.close();
  });

  it('serves index.html for app routes, never cached', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/w/ws_0000000000/settings' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toContain('<div id="root">');
  });

  it('serves a bundle file built after start-up, cached for good', async () => {
    writeFileSync(path.join(WEB_ROOT, 'assets', late), 'console.log("late");\n');
    const res = await t.app.inject({ method: 'GET', url: `/assets/${late}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/javascript/);
    expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(res.body).toBe('console.log("late");\n');
  });

  it('answers a missing bundle file, or a path that is not one, with a 404 problem, not the page', async () => {
    for (const url of [
      '/assets/index-gone1234.js',
      '/assets/index-gone1234.js?v=1',
      '/assets/.hidden',
      '/assets/a/b.js',
      '/assets/%2e%2e%2fpackage.json',
    ]) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type'], url).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(res.body).code, url).toBe('not_found');
    }
  });
});
