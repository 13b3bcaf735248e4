// Debian's Chromium driven by playwright-core (which never downloads a browser of its own), and
// the static server that hands it the example page and the test harness page.
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from '../../../examples/browser/serve.mjs';
import { HERE } from './util.mjs';

export const CHROMIUM = process.env.FERRYMQ_CHROMIUM || '/usr/bin/chromium';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-quic',
  // The WSS listeners (broker and nginx) use a self-signed certificate made for this run.
  '--ignore-certificate-errors'];

/**
 * Starts the static server and Chromium. playwright's launch() gives the browser a fresh
 * temporary user-data-dir, removed when the browser closes.
 */
export async function startBrowser() {
  const server = await startServer({
    port: 0,
    routes: {
      '/test.html': path.join(HERE, '..', 'page', 'test.html'),
      '/harness.js': path.join(HERE, '..', 'page', 'harness.js'),
    },
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 60_000 });
  const contexts = new Set();
  const consoleLines = [];

  /** A new isolated context (its own cookies, storage, connections) with one page at `urlPath`. */
  async function openPage(urlPath = '/test.html') {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    contexts.add(context);
    context.once('close', () => contexts.delete(context));
    const page = await context.newPage();
    page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
    await page.goto(origin + urlPath);
    if (urlPath === '/test.html') {
      await page.waitForFunction(() => document.getElementById('ready')?.textContent === 'ready', null, { timeout: 20_000 });
    }
    return { context, page };
  }

  async function close() {
    for (const c of [...contexts]) await c.close().catch(() => {});
    await browser.close().catch(() => {});
    await new Promise((r) => server.close(r));
  }

  return { browser, origin, openPage, close, consoleLines };
}
