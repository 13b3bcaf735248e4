// Virtual hosts and permissions with mqtt.js over WebSocket, as a browser page connects: a
// `vhost:user` user name on a listener of the default vhost, and a listener whose default
// vhost is `public` (so the page's credentials need no prefix), with a limited user whose
// rights are exactly what the operator granted.
//
// The internal database is prepared with the `ferrymq users|vhosts|permissions` commands
// before the broker starts; the broker is launched here because it needs two WebSocket
// listeners with different vhosts (a [websocket] table in its config file).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { REPO, ferrymqOnly, freePort, sleep, uid } from './helpers.mjs';

const BIN = process.env.FERRYMQ_BIN || path.join(REPO, 'target', 'release', 'ferrymq');
const NOT_AUTHORIZED = 0x87;

let dir;
let proc;
const ports = {};
const clients = [];

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
}

function cli(...args) {
  return execFileSync(BIN, [...args, '--data-dir', path.join(dir, 'data')], { encoding: 'utf8' });
}

function logTail() {
  try {
    return fs.readFileSync(path.join(dir, 'broker.log'), 'utf8').split('\n').slice(-40).join('\n');
  } catch {
    return '(no log)';
  }
}

before(async () => {
  if (ferrymqOnly.skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrymq-node-access-'));
  const used = new Set();
  for (const name of ['mqtt', 'ws', 'publicWs']) {
    let port;
    do { port = await freePort(); } while (used.has(port));
    used.add(port);
    ports[name] = port;
  }
  cli('users', 'add', 'admin', '--password', 'admin-pw');
  cli('users', 'add', 'page', '--password', 'page-pw');
  cli('vhosts', 'add', 'public', '--description', 'What browsers may see');
  cli('permissions', 'set', '--vhost', '/', 'admin', '--publish', '#', '--subscribe', '#');
  cli('permissions', 'set', '--vhost', 'public', 'admin', '--publish', '#', '--subscribe', '#');
  cli('permissions', 'set', '--vhost', 'public', 'page',
    '--publish', 'chat/{client_id}/out', '--subscribe', 'chat/+/out');
  fs.writeFileSync(path.join(dir, 'ferrymq.toml'), [
    '[websocket]',
    `listen = ["127.0.0.1:${ports.ws}", { address = "127.0.0.1:${ports.publicWs}", vhost = "public" }]`,
    '',
  ].join('\n'));
  const log = fs.openSync(path.join(dir, 'broker.log'), 'a');
  proc = spawn(BIN, [
    'serve', '--config', path.join(dir, 'ferrymq.toml'),
    '--mqtt-listen', `127.0.0.1:${ports.mqtt}`,
    '--data-dir', path.join(dir, 'data'), '--log-level', 'debug',
  ], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const deadline = Date.now() + 30000;
  for (const port of [ports.mqtt, ports.ws, ports.publicWs]) {
    while (!(await canConnect(port))) {
      if (Date.now() > deadline || proc.exitCode !== null) {
        throw new Error(`broker did not start:\n${logTail()}`);
      }
      await sleep(50);
    }
  }
});

after(async () => {
  await Promise.all(clients.splice(0).map((c) => new Promise((resolve) => {
    try { c.end(true, {}, () => resolve()); } catch { resolve(); }
    setTimeout(resolve, 1000);
  })));
  if (proc && proc.exitCode === null) {
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    await exited;
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Connects over WebSocket (path /ws of `port`); resolves after CONNACK. */
function connect(port, username, password, opts = {}) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`ws://127.0.0.1:${port}/ws`, {
      username, password, clientId: uid('page'), protocolVersion: 5,
      reconnectPeriod: 0, connectTimeout: 5000, ...opts,
    });
    clients.push(client);
    client.once('connect', () => resolve(client));
    client.once('error', (err) => { client.end(true); reject(err); });
  });
}

/** SUBSCRIBE; the SUBACK's codes (mqtt.js rejects a SUBACK with a failure code). */
async function subackCodes(client, filters, opts) {
  try {
    return (await client.subscribeAsync(filters, opts)).map((g) => g.qos);
  } catch (err) {
    if (err.name !== 'ErrorWithSubackPacket' || !err.packet) throw err;
    return err.packet.granted;
  }
}

/** The messages a client receives, with a timed wait. */
function inbox(client) {
  const items = [];
  client.on('message', (topic, payload) => items.push({ topic, payload: payload.toString() }));
  return {
    items,
    async take(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!items.length) {
        if (Date.now() > deadline) throw new Error('no message');
        await sleep(20);
      }
      return items.shift();
    },
  };
}

const withLog = (fn) => async (t) => {
  try {
    await fn(t);
  } catch (err) {
    err.message += `\n--- broker log tail ---\n${logTail()}`;
    throw err;
  }
};

test('vhost:user over ws and a listener whose default vhost is public', ferrymqOnly, withLog(async () => {
  // On the default vhost's listener the page names its vhost; on the public listener it
  // needs no prefix. Both land in "public" and talk to each other.
  const prefixed = await connect(ports.ws, 'public:page', 'page-pw', { clientId: 'alice' });
  const plain = await connect(ports.publicWs, 'page', 'page-pw', { clientId: 'bob' });
  // An administrator in "/" subscribed to everything sees nothing of "public".
  const root = await connect(ports.ws, 'admin', 'admin-pw');
  const rootInbox = inbox(root);
  await root.subscribeAsync('#', { qos: 1 });

  const bobInbox = inbox(plain);
  assert.deepEqual(await subackCodes(plain, 'chat/+/out', { qos: 1 }), [1]);
  await prefixed.publishAsync('chat/alice/out', 'hello from alice', { qos: 1 });
  const got = await bobInbox.take();
  assert.deepEqual(got, { topic: 'chat/alice/out', payload: 'hello from alice' });
  await sleep(300);
  assert.deepEqual(rootInbox.items, [], 'vhosts do not see each other');

  // The vhost: prefix wins over the listener's vhost: the page has nothing in "/".
  await assert.rejects(connect(ports.publicWs, '/:page', 'page-pw'), /Not authorized/i);
  // Without a prefix on the "/" listener: no permissions there either.
  await assert.rejects(connect(ports.ws, 'page', 'page-pw'), /Not authorized/i);
  // A wrong password is refused without saying which check failed.
  await assert.rejects(connect(ports.publicWs, 'page', 'wrong'), /Bad User Name or Password/i);
}));

test('the page may do exactly what it was granted (MQTT 5 reason codes)', ferrymqOnly, withLog(async () => {
  const page = await connect(ports.publicWs, 'page', 'page-pw', { clientId: 'carol' });
  const codes = await subackCodes(page, ['chat/+/out', 'chat/#', 'admin/#'], { qos: 1 });
  assert.deepEqual(codes, [1, NOT_AUTHORIZED, NOT_AUTHORIZED]);

  // Publishing as somebody else, or elsewhere: PUBACK 0x87, and nothing is delivered.
  const admin = await connect(ports.publicWs, 'admin', 'admin-pw');
  const seen = inbox(admin);
  await admin.subscribeAsync('#', { qos: 1 });
  for (const topic of ['chat/dave/out', 'admin/x']) {
    await assert.rejects(page.publishAsync(topic, 'x', { qos: 1 }), (err) => {
      assert.equal(err.code, NOT_AUTHORIZED, String(err));
      return true;
    });
  }
  await page.publishAsync('chat/carol/out', 'mine', { qos: 1 });
  assert.deepEqual(await seen.take(), { topic: 'chat/carol/out', payload: 'mine' });
  await sleep(300);
  assert.deepEqual(seen.items, [], 'the denied publishes were dropped');
}));

test('MQTT 3.1.1 over ws: SUBACK 0x80 and refused CONNECT code 5', ferrymqOnly, withLog(async () => {
  const page = await connect(ports.publicWs, 'page', 'page-pw', { protocolVersion: 4 });
  assert.deepEqual(await subackCodes(page, ['chat/+/out', 'admin/#'], { qos: 0 }), [0, 0x80]);
  await assert.rejects(connect(ports.ws, 'page', 'page-pw', { protocolVersion: 4 }), (err) => {
    assert.equal(err.code, 5, String(err));
    return true;
  });
}));
