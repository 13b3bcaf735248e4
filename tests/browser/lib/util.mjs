// Small helpers shared by the browser suite: paths, free ports, waiting, temp dirs.
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..', '..');
export const MODE = (process.env.FERRYMQ_TEST_BROKER ?? 'ferrymq').trim().toLowerCase() || 'ferrymq';
if (MODE !== 'ferrymq' && MODE !== 'mosquitto') {
  throw new Error(`FERRYMQ_TEST_BROKER must be ferrymq or mosquitto, not ${JSON.stringify(MODE)}`);
}
export const IS_MOSQUITTO = MODE === 'mosquitto';

/** A TCP port that was free on `host` a moment ago. */
export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on host:port; rejects after `timeoutMs`. */
export async function waitForPort(port, { host = '127.0.0.1', timeoutMs = 20_000, alive = () => true } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host, port });
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`process exited before listening on ${host}:${port}`);
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value; rejects with `what` after `timeoutMs`. */
export async function waitUntil(fn, { timeoutMs = 20_000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * A fresh temp directory (broker and nginx configs, data, logs). Under $FERRYMQ_BROWSER_TMP when
 * set: scripts/test-browser.sh sets it, prints the logs there when a test fails and removes it
 * otherwise. Else under the system temp dir, removed at exit unless FERRYMQ_KEEP_TMP=1.
 */
export function tempDir(prefix) {
  const base = process.env.FERRYMQ_BROWSER_TMP;
  if (base) {
    fs.mkdirSync(base, { recursive: true });
    return fs.mkdtempSync(path.join(base, `${prefix}-`));
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ferrymq-browser-${prefix}-`));
  if (process.env.FERRYMQ_KEEP_TMP !== '1') {
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return dir;
}

/** Last `n` lines of a text file ('' when it does not exist). */
export function tail(file, n = 40) {
  try {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    return lines.slice(-n - 1).join('\n');
  } catch {
    return '';
  }
}

/** A unique topic prefix per test, so tests never see each other's messages or retained state. */
let topicSeq = 0;
export function uniqueTopic(name) {
  topicSeq += 1;
  return `browser-test/${process.pid}-${topicSeq}-${Math.random().toString(36).slice(2, 8)}/${name}`;
}
