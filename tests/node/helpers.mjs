// Test helpers for the mqtt.js black-box tests: start/stop/restart a broker on a free port,
// connect clients, wait for messages with timeouts.
//
// FERRYMQ_TEST_BROKER=mosquitto runs the same tests against Mosquitto (to validate the tests);
// tests that rely on FerryMQ-only behaviour pass `ferrymqOnly` as their test options.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');
export const MODE = (process.env.FERRYMQ_TEST_BROKER || 'ferrymq').trim().toLowerCase();
if (!['ferrymq', 'mosquitto'].includes(MODE)) {
  throw new Error(`FERRYMQ_TEST_BROKER must be ferrymq or mosquitto, not ${MODE}`);
}
export const IS_MOSQUITTO = MODE === 'mosquitto';
const FERRYMQ_BIN = process.env.FERRYMQ_BIN || path.join(REPO, 'target', 'release', 'ferrymq');

/** Test options for tests that rely on FerryMQ-specific behaviour. */
export const ferrymqOnly = IS_MOSQUITTO
  ? { skip: 'FerryMQ-specific behaviour (FERRYMQ_TEST_BROKER=mosquitto)' }
  : {};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function uid(prefix = 't') {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
}

let serveHelp = null;
/** Whether `ferrymq serve --help` lists flag (older builds lack some listeners' flags). */
function ferrymqHasFlag(flag) {
  if (serveHelp === null) {
    try {
      serveHelp = execFileSync(FERRYMQ_BIN, ['serve', '--help'], { encoding: 'utf8', timeout: 30000 });
    } catch {
      serveHelp = '';
    }
  }
  return serveHelp.includes(flag);
}

function tomlValue(v) {
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  throw new Error(`cannot write ${v} as TOML`);
}

export class Broker {
  constructor({ allowAnonymous = false, limits = {}, mqtt: mqttCfg = {} } = {}) {
    this.allowAnonymous = allowAnonymous;
    this.limits = limits;
    this.mqttCfg = mqttCfg;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrymq-node-'));
    this.logPath = path.join(this.dir, 'broker.log');
    this.dataDir = path.join(this.dir, 'data');
    fs.mkdirSync(this.dataDir, { recursive: true });
    this.port = null;
    this.wsPort = null;
    this.proc = null;
    this.host = '127.0.0.1';
  }

  get url() {
    return `mqtt://${this.host}:${this.port}`;
  }

  command() {
    if (IS_MOSQUITTO) {
      const passwd = path.join(this.dir, 'passwd');
      execFileSync('mosquitto_passwd', ['-b', '-c', passwd, 'guest', 'guest'], { stdio: 'ignore' });
      fs.chmodSync(passwd, 0o600);
      const user = os.userInfo().username;
      const lines = [
        `user ${user}`,
        'per_listener_settings false',
        'persistence false',
        'log_dest stderr',
        'log_type all',
        `allow_anonymous ${this.allowAnonymous}`,
        `password_file ${passwd}`,
      ];
      if (this.limits.max_packet_size) lines.push(`max_packet_size ${this.limits.max_packet_size}`);
      lines.push(`listener ${this.port} ${this.host}`);
      lines.push(`max_topic_alias ${this.limits.topic_alias_maximum ?? 64}`);
      const conf = path.join(this.dir, 'mosquitto.conf');
      fs.writeFileSync(conf, lines.join('\n') + '\n');
      const bin = process.env.MOSQUITTO_BIN
        || (fs.existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto');
      return [bin, ['-c', conf]];
    }
    if (!fs.existsSync(FERRYMQ_BIN)) {
      throw new Error(`FerryMQ binary not found at ${FERRYMQ_BIN}: run cargo build --release or set FERRYMQ_BIN`);
    }
    // --ws-listen: FerryMQ also serves MQTT over WebSocket, by default on the fixed port 15675;
    // every test broker gets its own port so that brokers can run side by side.
    const args = ['serve', '--mqtt-listen', `${this.host}:${this.port}`];
    if (ferrymqHasFlag('--ws-listen')) args.push('--ws-listen', `${this.host}:${this.wsPort}`);
    // The management API's default port (15672) is fixed too: port 0 on loopback instead.
    if (ferrymqHasFlag('--management-listen')) args.push('--management-listen', `${this.host}:0`);
    args.push('--data-dir', this.dataDir);
    const tables = { mqtt: this.mqttCfg, limits: this.limits };
    if (Object.values(tables).some((t) => Object.keys(t).length)) {
      const out = [];
      for (const [name, values] of Object.entries(tables)) {
        if (!Object.keys(values).length) continue;
        out.push(`[${name}]`);
        for (const [k, v] of Object.entries(values)) out.push(`${k} = ${tomlValue(v)}`);
        out.push('');
      }
      const cfg = path.join(this.dir, 'ferrymq.toml');
      fs.writeFileSync(cfg, out.join('\n'));
      args.push('--config', cfg);
    }
    if (this.allowAnonymous) args.push('--allow-anonymous');
    args.push('--log-level', 'debug');
    // Escape hatch for flags the harness does not know about yet (whitespace-separated).
    const extra = (process.env.FERRYMQ_EXTRA_ARGS || '').trim();
    if (extra) args.push(...extra.split(/\s+/));
    return [FERRYMQ_BIN, args];
  }

  async start(timeoutMs = 30000) {
    if (this.port == null) {
      this.port = await freePort();
      do { this.wsPort = await freePort(); } while (this.wsPort === this.port);
    }
    const [bin, args] = this.command();
    const fd = fs.openSync(this.logPath, 'a');
    fs.writeSync(fd, `==== ${bin} ${args.join(' ')}\n`);
    const proc = spawn(bin, args, { stdio: ['ignore', fd, fd], cwd: this.dir });
    fs.closeSync(fd);
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    let exitInfo = null;
    this.exited.then((e) => { exitInfo = e; });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exitInfo) {
        throw new Error(`broker exited during startup (${JSON.stringify(exitInfo)}):\n${this.logTail(40)}`);
      }
      if (await canConnect(this.port)) return this;
      await sleep(50);
    }
    await this.stop();
    throw new Error(`broker did not accept connections on ${this.port}:\n${this.logTail(40)}`);
  }

  /** SIGTERM, then SIGKILL after 5 s. Resolves with the exit code. */
  async stop() {
    const proc = this.proc;
    if (!proc) return null;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(killer);
    }
    this.proc = null;
    return proc.exitCode;
  }

  /** Stop and start again on the same port and data directory. */
  async restart() {
    await this.stop();
    await this.start();
  }

  logTail(lines = 60) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  cleanup() {
    try { fs.rmSync(this.dir, { recursive: true, force: true }); } catch { /* ignore */ }
  }
}

export async function startBroker(opts = {}) {
  const b = new Broker(opts);
  await b.start();
  return b;
}

/**
 * Wrap a test body so that a failure carries the tail of the broker's log.
 * test('x', withLog(() => broker, async (t) => {...}))
 */
export function withLog(getBroker, fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (err) {
      const b = getBroker();
      if (b && err && typeof err === 'object') {
        const tail = `\n--- broker log tail (${b.logPath}) ---\n${b.logTail(60)}`;
        try { err.message += tail; } catch { /* read-only message */ }
      }
      throw err;
    }
  };
}

/** Tracks clients of one test file and ends them all (forcefully) on cleanup. */
export class Clients {
  constructor() { this.list = []; }

  /** Connect with guest/guest; resolves after CONNACK, rejects on a connection error. */
  async connect(broker, opts = {}, timeoutMs = 5000) {
    const client = mqtt.connect(broker.url, {
      username: 'guest',
      password: 'guest',
      clientId: uid('node'),
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      protocolVersion: 4,
      ...opts,
    });
    this.list.push(client);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no CONNACK within ${timeoutMs} ms`)), timeoutMs);
      client.once('connect', (connack) => { clearTimeout(timer); client.connack = connack; resolve(); });
      client.once('error', (err) => { clearTimeout(timer); reject(err); });
    });
    return client;
  }

  /** Like connect() but resolves with the error the connection attempt produced. */
  async connectError(broker, opts = {}, timeoutMs = 5000) {
    const client = mqtt.connect(broker.url, {
      clientId: uid('node'),
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      protocolVersion: 4,
      ...opts,
    });
    this.list.push(client);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`neither error nor CONNACK within ${timeoutMs} ms`)), timeoutMs);
      client.once('connect', () => { clearTimeout(timer); reject(new Error('connection was accepted')); });
      client.once('error', (err) => { clearTimeout(timer); resolve({ client, err }); });
    });
  }

  async endAll() {
    const list = this.list.splice(0);
    await Promise.all(list.map((c) => new Promise((resolve) => {
      try { c.end(true, {}, () => resolve()); } catch { resolve(); }
      setTimeout(resolve, 1000);
    })));
  }
}

/** Collect messages on a client into a queue with timed waits. */
export class Inbox {
  constructor(client) {
    this.items = [];
    this.waiters = [];
    client.on('message', (topic, payload, packet) => {
      this.items.push({ topic, payload, packet });
      const w = this.waiters.splice(0);
      w.forEach((f) => f());
    });
  }

  async take(n = 1, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (this.items.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`expected ${n} message(s) within ${timeoutMs} ms, got ${this.items.length}: `
          + JSON.stringify(this.items.map((m) => m.topic)));
      }
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    return this.items.splice(0, n);
  }

  async one(timeoutMs = 5000) {
    return (await this.take(1, timeoutMs))[0];
  }

  /** Assert nothing arrives within ms. */
  async none(ms = 500) {
    await sleep(ms);
    if (this.items.length) {
      throw new Error(`unexpected message(s): ${JSON.stringify(this.items.map((m) => m.topic))}`);
    }
  }
}

export function subscribe(client, topic, opts = { qos: 1 }) {
  return new Promise((resolve, reject) => {
    client.subscribe(topic, opts, (err, granted) => (err ? reject(err) : resolve(granted)));
  });
}

export function publish(client, topic, payload, opts = { qos: 1 }) {
  return new Promise((resolve, reject) => {
    client.publish(topic, payload, opts, (err, packet) => (err ? reject(err) : resolve(packet)));
  });
}

/** Resolve when emitter emits `event`, reject after timeoutMs. */
export function waitEvent(emitter, event, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no '${event}' within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, (...args) => { clearTimeout(t); resolve(args); });
  });
}
