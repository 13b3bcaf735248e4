// MQTT over WebSocket (ws://) and WebSocket over TLS (wss://) with mqtt.js, the way a web page
// connects: both URL paths (/ws and /mqtt), MQTT 3.1.1 and 5.0, a WebSocket client and a TCP
// device exchanging messages, refused credentials, and the health check.
//
// The broker is launched here (not with helpers.mjs's Broker) because wss needs a [tls] section
// with a certificate, made with the openssl command line.
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
const HAVE_OPENSSL = (() => {
  try { execFileSync('openssl', ['version'], { stdio: 'ignore' }); return true; } catch { return false; }
})();

let dir;
let proc;
const ports = {};
let ca;

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
}

before(async () => {
  if (ferrymqOnly.skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrymq-node-ws-'));
  const used = new Set();
  for (const name of ['mqtt', 'ws', 'wss', 'mqtts']) {
    let port;
    do { port = await freePort(); } while (used.has(port));
    used.add(port);
    ports[name] = port;
  }
  let config = `[websocket]\ntls_listen = ["127.0.0.1:${ports.wss}"]\n`;
  if (HAVE_OPENSSL) {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    ca = fs.readFileSync(path.join(dir, 'cert.pem'));
    config += `[tls]\ncert_file = "${dir}/cert.pem"\nkey_file = "${dir}/key.pem"\nlisten = ["127.0.0.1:${ports.mqtts}"]\n`;
  }
  fs.writeFileSync(path.join(dir, 'ferrymq.toml'), config);
  const log = fs.openSync(path.join(dir, 'broker.log'), 'a');
  proc = spawn(BIN, [
    'serve', '--config', path.join(dir, 'ferrymq.toml'),
    '--mqtt-listen', `127.0.0.1:${ports.mqtt}`, '--ws-listen', `127.0.0.1:${ports.ws}`,
    '--management-listen', '127.0.0.1:0',
    '--data-dir', path.join(dir, 'data'), '--log-level', 'debug',
  ], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const deadline = Date.now() + 30000;
  const wanted = HAVE_OPENSSL ? [ports.mqtt, ports.ws, ports.wss] : [ports.mqtt, ports.ws];
  for (const port of wanted) {
    while (!(await canConnect(port))) {
      if (Date.now() > deadline || proc.exitCode !== null) {
        throw new Error(`broker did not start:\n${fs.readFileSync(path.join(dir, 'broker.log'), 'utf8')}`);
      }
      await sleep(50);
    }
  }
});

after(async () => {
  if (proc && proc.exitCode === null) {
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    await exited;
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function connect(url, opts = {}) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      username: 'guest', password: 'guest', reconnectPeriod: 0, connectTimeout: 5000, ...opts,
    });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => { client.end(true); reject(err); });
  });
}

function nextMessage(client) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message')), 5000);
    client.once('message', (topic, payload, packet) => { clearTimeout(timer); resolve({ topic, payload, packet }); });
  });
}

async function roundTrip(url, opts) {
  const sub = await connect(url, opts);
  const pub = await connect(`mqtt://127.0.0.1:${ports.mqtt}`, { protocolVersion: opts.protocolVersion });
  try {
    const topic = `${uid('ws')}/temp`;
    await sub.subscribeAsync(topic, { qos: 1 });
    const got = nextMessage(sub);
    await pub.publishAsync(topic, 'Hello World!', { qos: 1 });
    const { payload, packet } = await got;
    assert.equal(payload.toString(), 'Hello World!');
    assert.equal(packet.qos, 1);
    // And back: the WebSocket client publishes, the TCP device receives.
    await pub.subscribeAsync(`${topic}/reply`, { qos: 1 });
    const back = nextMessage(pub);
    await sub.publishAsync(`${topic}/reply`, Buffer.alloc(256 * 1024, 7), { qos: 1 });
    assert.equal((await back).payload.length, 256 * 1024);
  } finally {
    await Promise.all([sub.endAsync(), pub.endAsync()]);
  }
}

for (const wsPath of ['/ws', '/mqtt']) {
  for (const protocolVersion of [4, 5]) {
    test(`ws://${wsPath} v${protocolVersion === 4 ? '3.1.1' : '5'}: page and device exchange messages`, ferrymqOnly, async () => {
      await roundTrip(`ws://127.0.0.1:${ports.ws}${wsPath}`, { protocolVersion });
    });
  }
}

test('wss:// with a self-signed certificate', { ...ferrymqOnly, skip: ferrymqOnly.skip || (!HAVE_OPENSSL && 'no openssl') }, async () => {
  await roundTrip(`wss://localhost:${ports.wss}/mqtt`, { protocolVersion: 5, ca });
  await roundTrip(`mqtts://localhost:${ports.mqtts}`, { protocolVersion: 4, ca });
});

test('wrong password over ws: a clean error, no hang', ferrymqOnly, async () => {
  await assert.rejects(
    connect(`ws://127.0.0.1:${ports.ws}/ws`, { password: 'wrong', protocolVersion: 5 }),
    /Bad User Name or Password|Not authorized|bad user/i,
  );
});

test('health check and plain GET on the WebSocket port', ferrymqOnly, async () => {
  const health = await fetch(`http://127.0.0.1:${ports.ws}/healthz`);
  assert.equal(health.status, 200);
  assert.equal((await health.text()).trim(), 'ok');
  assert.equal((await fetch(`http://127.0.0.1:${ports.ws}/ws`)).status, 426);
  assert.equal((await fetch(`http://127.0.0.1:${ports.ws}/nope`)).status, 404);
});
