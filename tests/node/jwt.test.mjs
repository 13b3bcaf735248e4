// JWT for browser apps with mqtt.js over WebSocket: the token in the password field, its
// scopes as the page's rights, bad tokens refused, and the connection closed when the token
// expires (MQTT 5 DISCONNECT 0xA0). The broker runs with an [auth.jwt] section whose HS256
// secret is in a file; tokens are signed here with node:crypto.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { REPO, ferrymqOnly, freePort, sleep, uid } from './helpers.mjs';

const BIN = process.env.FERRYMQ_BIN || path.join(REPO, 'target', 'release', 'ferrymq');
const SECRET = 'node-test-secret-not-for-production';
const NOT_AUTHORIZED = 0x87;
const MAXIMUM_CONNECT_TIME = 0xa0;

let dir;
let proc;
let port;
const clients = [];

const b64url = (data) => Buffer.from(data).toString('base64url');

function sign(claims, secret = SECRET) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const mac = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${mac}`;
}

/** A token for user "page" valid for `secs` seconds, publishing and subscribing in chat/#. */
function token(secs, extra = {}) {
  return sign({
    sub: 'page',
    aud: 'ferrymq',
    exp: Math.floor(Date.now() / 1000) + secs,
    scope: 'ferrymq.publish:%2F/chat/# ferrymq.subscribe:%2F/chat/#',
    ...extra,
  });
}

function canConnect(p) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: p });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
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
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrymq-node-jwt-'));
  port = await freePort();
  let mqttPort;
  do { mqttPort = await freePort(); } while (mqttPort === port);
  const secretFile = path.join(dir, 'jwt-secret');
  fs.writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'ferrymq.toml'), [
    '[auth.jwt]',
    'algorithms = ["HS256"]',
    'audience = "ferrymq"',
    'leeway_secs = 0',
    '[[auth.jwt.keys]]',
    `secret_file = ${JSON.stringify(secretFile)}`,
    '[websocket]',
    `listen = ["127.0.0.1:${port}"]`,
    '',
  ].join('\n'));
  const log = fs.openSync(path.join(dir, 'broker.log'), 'a');
  proc = spawn(BIN, [
    'serve', '--config', path.join(dir, 'ferrymq.toml'),
    '--mqtt-listen', `127.0.0.1:${mqttPort}`,
    '--data-dir', path.join(dir, 'data'), '--log-level', 'debug',
  ], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const deadline = Date.now() + 30000;
  while (!(await canConnect(port))) {
    if (Date.now() > deadline || proc.exitCode !== null) {
      throw new Error(`broker did not start:\n${logTail()}`);
    }
    await sleep(50);
  }
});

after(async () => {
  for (const c of clients.splice(0)) {
    try { c.end(true); } catch { /* already gone */ }
  }
  if (proc && proc.exitCode === null) {
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    await exited;
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Connects over WebSocket with the token as password. mqtt.js sends a password only with a
 * user name, so the page uses the token's user name (the broker requires it to match).
 */
function connect(password, opts = {}) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`ws://127.0.0.1:${port}/mqtt`, {
      username: 'page', password, clientId: uid('page'), protocolVersion: 5,
      reconnectPeriod: 0, connectTimeout: 5000, ...opts,
    });
    clients.push(client);
    client.once('connect', () => resolve(client));
    client.once('error', (err) => { client.end(true); reject(err); });
  });
}

const withLog = (fn) => async (t) => {
  try {
    await fn(t);
  } catch (err) {
    err.message += `\n--- broker log tail ---\n${logTail()}`;
    throw err;
  }
};

test('a token in the password grants exactly its scopes', ferrymqOnly, withLog(async () => {
  const page = await connect(token(60));
  const got = new Promise((resolve) => page.once('message', (topic, payload) => resolve([topic, payload.toString()])));
  await page.subscribeAsync('chat/#', { qos: 1 });
  await page.publishAsync('chat/room', 'hello', { qos: 1 });
  assert.deepEqual(await got, ['chat/room', 'hello']);
  await assert.rejects(page.publishAsync('admin/x', 'no', { qos: 1 }), (err) => {
    assert.equal(err.code, NOT_AUTHORIZED, String(err));
    return true;
  });
  // MQTT 3.1.1 too.
  await connect(token(60), { protocolVersion: 4 });
}));

test('expired, forged and wrong-audience tokens are bad credentials', ferrymqOnly, withLog(async () => {
  for (const bad of [token(-10), sign({ sub: 'page', aud: 'ferrymq', exp: 4102444800 }, 'guess'),
    token(60, { aud: 'other' })]) {
    await assert.rejects(connect(bad), /Bad User Name or Password/i);
  }
  // Someone else's user name with the page's token.
  await assert.rejects(connect(token(60), { username: 'admin' }), /Bad User Name or Password/i);
}));

test('the connection closes with 0xA0 when the token expires', ferrymqOnly, withLog(async () => {
  const started = Date.now();
  const page = await connect(token(2));
  const packet = await new Promise((resolve, reject) => {
    page.once('disconnect', resolve);
    setTimeout(() => reject(new Error('no DISCONNECT within 5 s')), 5000);
  });
  assert.equal(packet.reasonCode, MAXIMUM_CONNECT_TIME);
  assert.ok(Date.now() - started >= 900, 'not before the token expired');
}));
