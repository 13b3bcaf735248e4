// A JSON Web Token in an HttpOnly cookie (FerryMQ's `[auth.jwt] cookie`): the page's scripts
// never see the token, Chromium sends it with the WebSocket handshake, and mqtt.js connects
// without a user name or password. The token's scopes are the client's permissions.
// FerryMQ only: Mosquitto has no JWT authentication.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Broker } from './lib/broker.mjs';
import { startBrowser } from './lib/browser.mjs';
import { Device } from './lib/device.mjs';
import { IS_MOSQUITTO, tempDir, uniqueTopic } from './lib/util.mjs';

const SECRET = 'browser-cookie-test-secret';
const COOKIE = 'mqtt_token';
const TEST_TIMEOUT = 60_000;

const b64url = (data) => Buffer.from(data).toString('base64url');

/** An HS256 token for `sub`, valid `secs` seconds (negative: already expired). */
function token(sub, scope, secs, secret = SECRET) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const exp = Math.floor(Date.now() / 1000) + secs;
  const claims = b64url(JSON.stringify({ sub, scope, exp }));
  const signature = crypto.createHmac('sha256', secret).update(`${header}.${claims}`).digest('base64url');
  return `${header}.${claims}.${signature}`;
}

describe('browser: JWT from an HttpOnly cookie on the WebSocket handshake', { skip: IS_MOSQUITTO && 'FerryMQ feature' }, () => {
  const env = {};

  before(async () => {
    const dir = tempDir('jwt-cookie');
    // The page's origin must be on the listener's allow-list before the broker starts.
    env.browser = await startBrowser();
    const secretFile = path.join(dir, 'jwt-secret');
    fs.writeFileSync(secretFile, SECRET, { mode: 0o600 });
    const extraToml = [
      '[websocket]', `allowed_origins = [${JSON.stringify(env.browser.origin)}]`, '',
      '[auth.jwt]', 'algorithms = ["HS256"]', `cookie = "${COOKIE}"`, '',
      '[[auth.jwt.keys]]', `secret_file = ${JSON.stringify(secretFile)}`, '',
    ].join('\n');
    env.broker = new Broker({ dir, extraToml });
    await env.broker.start();
  });

  after(async () => {
    await env.device?.close().catch(() => {});
    await env.browser?.close();
    await env.broker?.stop();
  });

  /** A page whose context holds the cookie (when given), and a connect attempt without credentials. */
  async function pageWithCookie(value) {
    const { page, context } = await env.browser.openPage();
    if (value !== undefined) {
      await context.addCookies([{ name: COOKIE, value, domain: '127.0.0.1', path: '/', httpOnly: true, sameSite: 'Lax' }]);
    }
    const res = await page.evaluate(([u]) => window.harness.connect('c', u, {}), [env.broker.wsUrl]);
    return { page, context, res };
  }

  const h = (page, method, ...args) => page.evaluate(([m, a]) => window.harness[m](...a), [method, args]);

  it('connects without a password, with the token\'s scopes, and the token stays out of the page', { timeout: TEST_TIMEOUT }, async () => {
    const topic = uniqueTopic('cookie-chat');
    const scope = `ferrymq.publish:%2F/${topic}/# ferrymq.subscribe:%2F/${topic}/#`;
    const { page, context, res } = await pageWithCookie(token('web-user', scope, 300));
    assert.equal(res.ok, true, `did not connect: ${JSON.stringify(res)}\n${env.broker.logTail()}`);
    assert.equal(res.connack.returnCode, 0);
    assert.equal(await page.evaluate(() => document.cookie), '', 'an HttpOnly cookie is invisible to scripts');

    // Allowed by the scopes: a round trip through the broker, and a device on TCP sees it too.
    env.device = new Device('cookie');
    await env.device.connect(env.broker);
    await env.device.subscribe(`${topic}/#`, 1);
    assert.deepEqual(await h(page, 'subscribe', 'c', `${topic}/#`, { qos: 1 }), [{ topic: `${topic}/#`, qos: 1 }]);
    await h(page, 'publish', 'c', `${topic}/hello`, 'Hello World!', { qos: 1 });
    const [m] = await h(page, 'waitMessages', 'c', `${topic}/hello`, 1);
    assert.equal(m.text, 'Hello World!');
    const [dm] = await env.device.waitMessages(`${topic}/hello`, 1);
    assert.equal(Buffer.from(dm.payload_b64, 'base64').toString(), 'Hello World!');
    // Outside the scopes: the subscription is refused (SUBACK 0x80, which mqtt.js 5 turns
    // into a rejected promise carrying the SUBACK).
    const refused = await page.evaluate(() => window.harness.subscribe('c', 'other/#', { qos: 1 })
      .then((granted) => ({ granted }), (err) => ({ error: String(err.message), codes: err.packet?.granted ?? null })));
    assert.deepEqual(refused.codes, [128], JSON.stringify(refused));
    await h(page, 'end', 'c');
    await context.close();
  });

  it('an expired or forged cookie token is a clean "bad user name or password"', { timeout: TEST_TIMEOUT }, async () => {
    for (const bad of [token('web-user', '', -60), token('web-user', '', 300, 'not-the-secret')]) {
      const { context, res } = await pageWithCookie(bad);
      assert.equal(res.ok, false, JSON.stringify(res));
      assert.equal(res.error.code, 4, JSON.stringify(res));
      await context.close();
    }
  });

  it('without the cookie the page is an anonymous client, refused', { timeout: TEST_TIMEOUT }, async () => {
    const { context, res } = await pageWithCookie(undefined);
    assert.equal(res.ok, false, JSON.stringify(res));
    assert.equal(res.error.code, 5, JSON.stringify(res));
    await context.close();
  });
});
