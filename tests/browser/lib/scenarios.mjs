// The browser scenarios of issue 3, defined once and run per transport:
//   ws     page -> ws://127.0.0.1:P/ws (the broker's WebSocket listener)
//   wss    page -> wss://127.0.0.1:P/ws (the broker's own TLS WebSocket listener)
//   nginx  page -> wss://127.0.0.1:P/ws/mqtt (nginx with docs/deploy/nginx.conf) -> ws listener
// Each transport gets its own broker, Chromium and (for nginx) nginx; scenarios within a
// transport run one after the other and use unique topics. The broker-restart scenario runs last.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Broker } from './broker.mjs';
import { startBrowser } from './browser.mjs';
import { Device } from './device.mjs';
import { Nginx } from './nginx.mjs';
import { makeSelfSignedCert } from './tls.mjs';
import { IS_MOSQUITTO, MODE, tempDir, uniqueTopic, waitUntil } from './util.mjs';

const TEST_TIMEOUT = 60_000;
const HELLO = 'Hello World!';

/**
 * CONNACK codes for a wrong password. FerryMQ: 4 "bad user name or password" (3.1.1) and 0x86
 * (5.0). Mosquitto 2.0 answers 5 "not authorized" and 0x87 instead; both are clean refusals.
 */
const WRONG_PASSWORD_CODE = IS_MOSQUITTO ? { 4: 5, 5: 0x87 } : { 4: 4, 5: 0x86 };

/** The same xorshift32 byte pattern as page/harness.js. */
function pattern(length, seed) {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

/**
 * @param {'ws'|'wss'|'nginx'} transport
 */
export function describeTransport(transport) {
  const env = {};
  const devices = [];

  function url() {
    if (transport === 'ws') return env.broker.wsUrl;
    if (transport === 'wss') return env.broker.wssUrl;
    return env.nginx.wssUrl;
  }

  /** Logs worth reading when a scenario fails, appended to its error. */
  function logs() {
    const parts = [`--- ${MODE} log (${env.broker?.logFile}) ---`, env.broker?.logTail(40) ?? ''];
    if (env.nginx) parts.push(env.nginx.logTail(20));
    if (env.browser?.consoleLines.length) parts.push('--- browser console ---', env.browser.consoleLines.slice(-20).join('\n'));
    return parts.join('\n');
  }

  /** A scenario: a test with a generous timeout whose failure carries the logs. */
  function scenario(name, fn, { skip = false } = {}) {
    it(name, { timeout: TEST_TIMEOUT, skip }, async () => {
      try {
        await fn();
      } catch (err) {
        if (err && typeof err === 'object') {
          try { err.message = `${err.message}\n${logs()}`; } catch { /* read-only message */ }
        }
        throw err;
      }
    });
  }

  async function device(name) {
    const d = new Device(`${transport}-${name}`);
    devices.push(d);
    await d.connect(env.broker);
    return d;
  }

  /** A page with the harness, and a client `name` connected on it. */
  async function connectedPage(name, options = {}) {
    const { page, context } = await env.browser.openPage();
    const res = await page.evaluate(([n, u, o]) => window.harness.connect(n, u, o), [name, url(), { username: 'guest', password: 'guest', ...options }]);
    assert.equal(res.ok, true, `page client ${name} did not connect: ${JSON.stringify(res)}`);
    return { page, context, connack: res.connack };
  }

  const h = (page, method, ...args) => page.evaluate(([m, a]) => window.harness[m](...a), [method, args]);

  describe(`browser over ${transport} (${MODE})`, () => {
    before(async () => {
      const dir = tempDir(transport);
      const tls = transport === 'ws' ? undefined : makeSelfSignedCert(dir);
      // Through nginx the broker's TCP peer is nginx's proxy_bind address, 127.0.0.2, while the
      // browser is at 127.0.0.1: FerryMQ is told to trust X-Forwarded-For from 127.0.0.2 only.
      const nginxBind = transport === 'nginx' ? '127.0.0.2' : undefined;
      env.broker = new Broker({
        dir,
        tls: transport === 'wss' ? tls : undefined,
        trustedProxies: nginxBind ? [`${nginxBind}/32`] : [],
        // Over plain ws:// every scenario runs with pages whose connections fall asleep after
        // a second of quiet and are pinged every two (FerryMQ's defaults: 5 and 30 s).
        extraToml: transport === 'ws' && !IS_MOSQUITTO
          ? '[websocket]\nhibernate_after_secs = 1\nping_interval_secs = 2\n' : '',
      });
      await env.broker.start();
      if (transport === 'nginx') {
        env.nginx = new Nginx({ dir, upstreamPort: env.broker.wsPort, cert: tls.cert, key: tls.key, bind: nginxBind });
        await env.nginx.start();
      }
      env.browser = await startBrowser();
    });

    after(async () => {
      await Promise.all(devices.map((d) => d.close().catch(() => {})));
      await env.browser?.close();
      await env.nginx?.stop();
      await env.broker?.stop();
    });

    scenario('WebSocket handshake answers the mqtt subprotocol', async () => {
      const { page, context } = await env.browser.openPage();
      const res = await page.evaluate((u) => new Promise((resolve) => {
        const ws = new WebSocket(u, ['mqtt']);
        ws.onopen = () => { resolve({ open: true, protocol: ws.protocol }); ws.close(1000); };
        ws.onerror = () => resolve({ open: false });
      }), url());
      assert.deepEqual(res, { open: true, protocol: 'mqtt' });
      await context.close();
      if (transport === 'nginx') {
        // The connection really went through nginx's /ws/mqtt location, upgraded (101).
        await waitUntil(() => / "GET \/ws\/mqtt HTTP\/1\.1" 101 /.test(env.nginx.accessLog()),
          { what: 'a 101 for GET /ws/mqtt in nginx\'s access log' });
      }
    });

    scenario('example page: connect, subscribe, publish "Hello World!", see it listed', async () => {
      const dev = await device('example');
      const topic = uniqueTopic('chat');
      await dev.subscribe(`${topic}/#`, 1);
      const { page, context } = await env.browser.openPage('/');
      await page.fill('#url', url());
      assert.equal(await page.inputValue('#username'), 'guest');
      assert.equal(await page.inputValue('#password'), 'guest');
      await page.click('#connect');
      await page.waitForSelector('#state[data-state="connected"]', { timeout: 20_000 });
      await page.fill('#sub-topic', `${topic}/#`);
      await page.click('#subscribe');
      await page.waitForFunction((f) => document.getElementById('subscriptions').textContent.includes(f), `${topic}/#`, { timeout: 20_000 });
      await page.fill('#pub-topic', `${topic}/browser`);
      assert.equal(await page.inputValue('#pub-message'), HELLO);
      await page.click('#publish');
      await page.waitForSelector('#messages li', { timeout: 20_000 });
      // A device on TCP answers; the page lists both messages in order.
      await dev.publish(`${topic}/device`, 'Hello browser!', { qos: 1 });
      await page.waitForFunction(() => document.querySelectorAll('#messages li').length >= 2, null, { timeout: 20_000 });
      const items = await page.$$eval('#messages li', (lis) => lis.map((li) => [li.querySelector('.topic').textContent, li.querySelector('.payload').textContent]));
      assert.deepEqual(items, [[`${topic}/browser`, HELLO], [`${topic}/device`, 'Hello browser!']]);
      const got = await dev.waitMessages(`${topic}/browser`, 1);
      assert.deepEqual(got.map((m) => Buffer.from(m.payload_b64, 'base64').toString()), [HELLO]);
      assert.equal(await page.textContent('#error'), '');
      await context.close();
    });

    for (const qos of [0, 1, 2]) {
      scenario(`connect guest/guest, subscribe, publish and receive "Hello World!" at QoS ${qos}`, async () => {
        const { page, context, connack } = await connectedPage('c');
        assert.equal(connack.returnCode, 0);
        const topic = uniqueTopic(`qos${qos}`);
        assert.deepEqual(await h(page, 'subscribe', 'c', topic, { qos }), [{ topic, qos }]);
        await h(page, 'publish', 'c', topic, HELLO, { qos });
        // A second message in the same flow: the first one arrived exactly once if exactly two come.
        await h(page, 'publish', 'c', topic, 'end', { qos });
        const msgs = await h(page, 'waitMessages', 'c', topic, 2);
        assert.deepEqual(msgs.map((m) => [m.text, m.qos, m.retain]), [[HELLO, qos, false], ['end', qos, false]]);
        await h(page, 'end', 'c');
        await context.close();
      });
    }

    scenario('an idle tab hibernates: its keep-alives and the broker\'s pings do not wake it, a message does', async () => {
      const { page, context } = await connectedPage('idle', { keepalive: 2 });
      const topic = uniqueTopic('asleep');
      await h(page, 'subscribe', 'idle', topic, { qos: 1 });
      await waitUntil(async () => await env.broker.metric('ferrymq_connections_hibernated') >= 1,
        { what: 'the page\'s connection asleep' });
      const wakes = await env.broker.metric('ferrymq_hibernated_wakes_total');
      const answered = await env.broker.metric('ferrymq_hibernated_pings_answered_total');
      // mqtt.js pings every 2 s, the broker every 2 s without a write: a few of each.
      await new Promise((r) => setTimeout(r, 5_000));
      assert.ok(await env.broker.metric('ferrymq_hibernated_pings_answered_total') >= answered + 2,
        'keep-alives answered while asleep');
      assert.equal(await env.broker.metric('ferrymq_hibernated_wakes_total'), wakes, 'nothing woke the tab\'s connection');
      const dev = await device('asleep');
      await dev.publish(topic, HELLO, { qos: 1 });
      const msgs = await h(page, 'waitMessages', 'idle', topic, 1);
      assert.deepEqual(msgs.map((m) => m.text), [HELLO]);
      const state = await h(page, 'state', 'idle');
      assert.equal(state.connected, true);
      assert.deepEqual(state.errors, []);
      assert.ok(!state.events.includes('close'), `events: ${state.events}`);
      await h(page, 'end', 'idle');
      await context.close();
    }, { skip: transport !== 'ws' || IS_MOSQUITTO });

    scenario('MQTT 5 from mqtt.js: user properties arrive intact, both ways', async () => {
      const dev = await device('v5');
      const toPage = uniqueTopic('v5-to-page');
      const toDevice = uniqueTopic('v5-to-device');
      await dev.subscribe(toDevice, 1);
      const { page, context, connack } = await connectedPage('v5', { protocolVersion: 5 });
      assert.equal(connack.reasonCode, 0);
      assert.deepEqual(await h(page, 'subscribe', 'v5', toPage, { qos: 1 }), [{ topic: toPage, qos: 1 }]);

      // Page -> page and page -> device. A repeated key is an array in mqtt.js.
      const userProperties = { 'x-trace': 'abc-123', greeting: 'žluťoučký kůň 🐴', multi: ['one', 'two'] };
      await h(page, 'publish', 'v5', toPage, HELLO, { qos: 1, properties: { userProperties } });
      await h(page, 'publish', 'v5', toDevice, HELLO, { qos: 1, properties: { userProperties } });
      const [m] = await h(page, 'waitMessages', 'v5', toPage, 1);
      assert.equal(m.text, HELLO);
      assert.deepEqual(m.userProperties, userProperties);
      const [dm] = await dev.waitMessages(toDevice, 1);
      assert.equal(Buffer.from(dm.payload_b64, 'base64').toString(), HELLO);
      assert.deepEqual(dm.user_properties, [['x-trace', 'abc-123'], ['greeting', 'žluťoučký kůň 🐴'], ['multi', 'one'], ['multi', 'two']]);

      // Device -> page.
      await dev.publish(toPage, 'from device', { qos: 1, userProperties: [['source', 'paho'], ['n', '42']] });
      const msgs = await h(page, 'waitMessages', 'v5', toPage, 2);
      assert.equal(msgs[1].text, 'from device');
      assert.deepEqual(msgs[1].userProperties, { source: 'paho', n: '42' });
      await context.close();
    });

    scenario('a page and a Python/TCP device exchange messages both ways', async () => {
      const dev = await device('chat');
      const toDevice = uniqueTopic('to-device');
      const toPage = uniqueTopic('to-page');
      await dev.subscribe(toDevice, 1);
      const { page, context } = await connectedPage('chat');
      await h(page, 'subscribe', 'chat', toPage, { qos: 1 });
      for (let i = 1; i <= 3; i++) {
        await h(page, 'publish', 'chat', toDevice, `browser says ${i}`, { qos: 1 });
        await dev.publish(toPage, `device says ${i}`, { qos: 1 });
      }
      const atDevice = await dev.waitMessages(toDevice, 3);
      assert.deepEqual(atDevice.map((e) => Buffer.from(e.payload_b64, 'base64').toString()), ['browser says 1', 'browser says 2', 'browser says 3']);
      const atPage = await h(page, 'waitMessages', 'chat', toPage, 3);
      assert.deepEqual(atPage.map((e) => e.text), ['device says 1', 'device says 2', 'device says 3']);
      await context.close();
    });

    scenario('a retained message reaches a page that subscribes later', async () => {
      const dev = await device('retain');
      const topic = uniqueTopic('retained');
      await dev.publish(topic, 'last known state', { qos: 1, retain: true });
      const { page, context } = await connectedPage('late');
      await h(page, 'subscribe', 'late', topic, { qos: 1 });
      const msgs = await h(page, 'waitMessages', 'late', topic, 1);
      assert.deepEqual(msgs.map((m) => [m.text, m.retain, m.qos]), [['last known state', true, 1]]);
      // A live publish after the subscription is not flagged retained.
      await dev.publish(topic, 'live', { qos: 1 });
      const after2 = await h(page, 'waitMessages', 'late', topic, 2);
      assert.deepEqual(after2.map((m) => [m.text, m.retain]), [['last known state', true], ['live', false]]);
      await dev.publish(topic, '', { qos: 1, retain: true }); // clear it
      await context.close();
    });

    scenario('the last will is published when a tab is closed abruptly (not on a clean disconnect)', async () => {
      const dev = await device('will');
      const topic = uniqueTopic('will');
      await dev.subscribe(topic, 1);
      // A tab that disconnects properly: no will.
      const clean = await connectedPage('clean', { will: { topic, payload: 'clean tab gone', qos: 1, retain: false } });
      await h(clean.page, 'end', 'clean');
      await clean.context.close();
      // A tab that is simply closed: the broker sees the socket go without DISCONNECT.
      const tab = await connectedPage('tab', { will: { topic, payload: 'tab gone', qos: 1, retain: false } });
      await tab.context.close();
      const msgs = await dev.waitMessages(topic, 1);
      assert.deepEqual(msgs.map((m) => [Buffer.from(m.payload_b64, 'base64').toString(), m.qos]), [['tab gone', 1]]);
    });

    scenario('wrong password: a clean CONNACK refusal in the page, no hang, no retry (3.1.1 and 5)', async () => {
      const { page, context } = await env.browser.openPage();
      for (const protocolVersion of [4, 5]) {
        const name = `bad${protocolVersion}`;
        const res = await page.evaluate(([n, u, o]) => window.harness.connect(n, u, o), [name, url(),
          { username: 'guest', password: 'not-the-password', protocolVersion, reconnectPeriod: 1000 }]);
        assert.equal(res.ok, false, `connected with a wrong password: ${JSON.stringify(res)}`);
        assert.equal(res.error.code, WRONG_PASSWORD_CODE[protocolVersion], `CONNACK code for MQTT ${protocolVersion}: ${JSON.stringify(res.error)}`);
        await h(page, 'waitEvent', name, 'close', 1);
        const st = await h(page, 'state', name);
        assert.equal(st.connected, false);
        assert.equal(st.connacks.length, 0);
        assert.equal(st.errors.length, 1);
        // mqtt.js does not retry a refused CONNECT even with reconnectPeriod set.
        assert.equal(st.events.includes('reconnect'), false, JSON.stringify(st.events));
      }
      await context.close();
      // The example page (MQTT 5) shows the refusal and gives up.
      const ex = await env.browser.openPage('/');
      await ex.page.fill('#url', url());
      await ex.page.fill('#password', 'not-the-password');
      await ex.page.click('#connect');
      await ex.page.waitForSelector('#state[data-state="error"]', { timeout: 20_000 });
      assert.match(await ex.page.textContent('#error'), new RegExp(`^Connection refused: .*\\(CONNACK code ${WRONG_PASSWORD_CODE[5]}\\)$`));
      assert.equal(await ex.page.isEnabled('#connect'), true);
      await ex.context.close();
    });

    scenario('256 KiB binary payload round trip, byte for byte (page -> page and device, device -> page)', async () => {
      const SIZE = 256 * 1024;
      const dev = await device('big');
      const fromPage = uniqueTopic('big-from-page');
      const fromDevice = uniqueTopic('big-from-device');
      await dev.subscribe(fromPage, 1);
      const { page, context } = await connectedPage('big');
      await h(page, 'subscribe', 'big', fromPage, { qos: 1 });
      await h(page, 'subscribe', 'big', fromDevice, { qos: 1 });

      const want1 = pattern(SIZE, 0x5eed1);
      const sent = await h(page, 'publishPattern', 'big', fromPage, SIZE, 0x5eed1, { qos: 1 });
      assert.equal(sent, sha256(want1)); // the page really sent the pattern
      await h(page, 'waitMessages', 'big', fromPage, 1, 30_000);
      const atPage = await h(page, 'checkPattern', 'big', fromPage, SIZE, 0x5eed1);
      assert.deepEqual(atPage, { found: true, length: SIZE, mismatches: 0, firstMismatch: -1, sha256: sha256(want1) });
      const [atDev] = await dev.waitMessages(fromPage, 1, { timeoutMs: 30_000 });
      assert.equal(atDev.length, SIZE);
      assert.ok(Buffer.from(atDev.payload_b64, 'base64').equals(want1), 'device received different bytes');

      const want2 = pattern(SIZE, 0xbee);
      await dev.publish(fromDevice, want2, { qos: 1 });
      await h(page, 'waitMessages', 'big', fromDevice, 1, 30_000);
      const back = await h(page, 'checkPattern', 'big', fromDevice, SIZE, 0xbee);
      assert.deepEqual(back, { found: true, length: SIZE, mismatches: 0, firstMismatch: -1, sha256: sha256(want2) });
      await context.close();
    });

    if (transport === 'nginx') {
      scenario('behind nginx, FerryMQ sees the browser (X-Forwarded-For from a trusted proxy), not nginx', async () => {
        const clientId = `xff-${Math.random().toString(16).slice(2, 10)}`;
        const { context } = await connectedPage('xff', { clientId });
        // nginx connects to the broker from 127.0.0.2; the browser is at 127.0.0.1.
        const line = await waitUntil(() => env.broker.log().split('\n').find((l) => l.includes(clientId) && /127\.0\.0\.[12]\b/.test(l)),
          { what: `a broker log line naming ${clientId} and its address` });
        assert.match(line, /127\.0\.0\.1\b/, `broker logged the proxy's address: ${line}`);
        assert.doesNotMatch(line, /127\.0\.0\.2\b/, `broker logged the proxy's address: ${line}`);
        await context.close();
      }, { skip: IS_MOSQUITTO ? 'Mosquitto ignores X-Forwarded-For' : false });
    }

    // Last: it restarts the broker under everything else.
    scenario('the page reconnects after the broker restarts and resumes receiving', async () => {
      const topic = uniqueTopic('restart');
      const { page, context } = await connectedPage('rc', { reconnectPeriod: 500, clean: true });
      await h(page, 'subscribe', 'rc', topic, { qos: 1 });
      const before = await device('before-restart');
      await before.publish(topic, 'before restart', { qos: 1 });
      await h(page, 'waitMessages', 'rc', topic, 1);
      await before.close();

      await env.broker.restart();
      await h(page, 'waitEvent', 'rc', 'connect', 2, 30_000);
      const st = await h(page, 'state', 'rc');
      assert.equal(st.connected, true);
      assert.ok(st.events.includes('reconnect'), JSON.stringify(st.events));

      // mqtt.js re-subscribes on its own after reconnecting; publish until that has happened.
      const after1 = await device('after-restart');
      let n = 0;
      await waitUntil(async () => {
        n += 1;
        await after1.publish(topic, `after restart ${n}`, { qos: 1 });
        const s = await h(page, 'state', 'rc');
        return s.messageCount >= 2;
      }, { timeoutMs: 30_000, intervalMs: 500, what: 'a message after the restart' });
      const msgs = await h(page, 'waitMessages', 'rc', topic, 2);
      assert.equal(msgs[0].text, 'before restart');
      assert.match(msgs[1].text, /^after restart \d+$/);
      await context.close();
    });
  });
}
