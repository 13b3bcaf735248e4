// permessage-deflate (FerryMQ's `[websocket] permessage_deflate = true`): Chromium offers it on
// every WebSocket, the broker accepts with no context takeover on either side, and a large
// compressible payload and small messages cross both ways between the page and a Python/TCP
// device intact. FerryMQ only: Mosquitto does not offer permessage-deflate.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Broker } from './lib/broker.mjs';
import { startBrowser } from './lib/browser.mjs';
import { Device } from './lib/device.mjs';
import { IS_MOSQUITTO, tempDir, uniqueTopic } from './lib/util.mjs';

const TEST_TIMEOUT = 90_000;
const ANSWER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';

/** About `size` bytes of JSON, compressible as real sensor batches are. */
function jsonPayload(size, seed) {
  const items = [];
  let length = 2;
  for (let i = 0; length < size; i++) {
    const item = JSON.stringify({ id: `${seed}-${i}`, temperature: (i * 7919 + seed) % 400 / 10, unit: 'celsius', ok: i % 3 !== 0 });
    items.push(item);
    length += item.length + 1;
  }
  return `[${items.join(',')}]`.slice(0, size);
}

describe('browser: permessage-deflate', { skip: IS_MOSQUITTO && 'FerryMQ feature' }, () => {
  const env = {};

  before(async () => {
    env.browser = await startBrowser();
    env.broker = new Broker({ dir: tempDir('deflate'), extraToml: '[websocket]\npermessage_deflate = true\n' });
    await env.broker.start();
  });

  after(async () => {
    await env.device?.close().catch(() => {});
    await env.browser?.close();
    await env.broker?.stop();
  });

  const h = (page, method, ...args) => page.evaluate(([m, a]) => window.harness[m](...a), [method, args]);

  it('is negotiated with Chromium and carries 256 KiB of JSON and small messages both ways', { timeout: TEST_TIMEOUT }, async () => {
    const { page, context } = await env.browser.openPage();
    // The handshake's response headers, as Chromium saw them.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const handshakes = [];
    cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => handshakes.push({ request: e.request.headers }));
    cdp.on('Network.webSocketHandshakeResponseReceived', (e) => handshakes.push({ response: e.response.headers }));

    const res = await h(page, 'connect', 'z', env.broker.wsUrl, { username: 'guest', password: 'guest', protocolVersion: 5 });
    assert.equal(res.ok, true, `did not connect: ${JSON.stringify(res)}\n${env.broker.logTail()}`);
    const header = (headers, name) => Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1];
    const offered = handshakes.map((x) => x.request && header(x.request, 'sec-websocket-extensions')).find(Boolean);
    const answered = handshakes.map((x) => x.response && header(x.response, 'sec-websocket-extensions')).find(Boolean);
    assert.match(offered ?? '', /permessage-deflate/, `Chromium offered: ${JSON.stringify(handshakes)}`);
    assert.equal(answered, ANSWER, JSON.stringify(handshakes));

    const topic = uniqueTopic('deflate');
    env.device = new Device('deflate');
    await env.device.connect(env.broker);
    await env.device.subscribe(`${topic}/to-device/#`, 1);
    await h(page, 'subscribe', 'z', `${topic}/to-page/#`, { qos: 1 });

    // Page -> device: a 256 KiB compressible message and small ones, in order.
    const big = jsonPayload(256 * 1024, 1);
    await h(page, 'publish', 'z', `${topic}/to-device/big`, big, { qos: 1 });
    for (let i = 0; i < 5; i++) await h(page, 'publish', 'z', `${topic}/to-device/small`, `small ${i}`, { qos: 1 });
    const [atDevice] = await env.device.waitMessages(`${topic}/to-device/big`, 1, { timeoutMs: 30_000 });
    assert.ok(Buffer.from(atDevice.payload_b64, 'base64').toString() === big, 'the device got different bytes');
    const small = await env.device.waitMessages(`${topic}/to-device/small`, 5);
    assert.deepEqual(small.map((m) => Buffer.from(m.payload_b64, 'base64').toString()), [0, 1, 2, 3, 4].map((i) => `small ${i}`));

    // Device -> page: the same, compressed by the broker.
    const back = jsonPayload(256 * 1024, 2);
    await env.device.publish(`${topic}/to-page/big`, back, { qos: 1 });
    for (let i = 0; i < 5; i++) await env.device.publish(`${topic}/to-page/small`, `tiny ${i}`, { qos: 1 });
    const [atPage] = await h(page, 'waitMessages', 'z', `${topic}/to-page/big`, 1, 30_000);
    assert.equal(atPage.length, back.length);
    assert.ok(atPage.text === back, 'the page got different bytes');
    const tiny = await h(page, 'waitMessages', 'z', `${topic}/to-page/small`, 5);
    assert.deepEqual(tiny.map((m) => m.text), [0, 1, 2, 3, 4].map((i) => `tiny ${i}`));

    assert.equal((await h(page, 'state', 'z')).connected, true, 'still connected');
    await h(page, 'end', 'z');
    await context.close();
  });
});
