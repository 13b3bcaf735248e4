// Node side of the Python/TCP "device" (lib/device.py, paho-mqtt over MQTT 5 on TCP).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { HERE, REPO } from './util.mjs';

function python() {
  for (const venv of ['venv', 'browser-venv']) {
    const py = path.join(REPO, 'tests', '.deps', venv, 'bin', 'python');
    if (fs.existsSync(py)) return py;
  }
  throw new Error('no Python with paho-mqtt: run scripts/install-browser-deps.sh');
}

export class Device {
  /** Spawns the device process; call connect() next. */
  constructor(name) {
    this.name = name;
    this.events = [];
    this.stderr = '';
    this.waiters = new Set();
    this.proc = spawn(python(), [path.join(HERE, 'device.py')], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      let ev;
      try { ev = JSON.parse(line); } catch { ev = { ev: 'garbage', line }; }
      this.events.push(ev);
      for (const w of this.waiters) w();
    });
    this.proc.once('exit', () => { for (const w of this.waiters) w(); });
  }

  send(cmd) { this.proc.stdin.write(JSON.stringify(cmd) + '\n'); }

  /** Resolves with the first event (from index `from` on) matching `pred`. */
  waitFor(pred, { timeoutMs = 20_000, what = 'event', from = 0 } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const bad = this.events.find((e, i) => i >= from && e.ev === 'error');
        if (bad) { done(); reject(new Error(`device ${this.name}: ${bad.message}`)); return; }
        const hit = this.events.find((e, i) => i >= from && pred(e));
        if (hit) { done(); resolve(hit); return; }
        if (this.proc.exitCode !== null) { done(); reject(new Error(`device ${this.name} exited: ${this.stderr}`)); }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`device ${this.name}: timed out after ${timeoutMs} ms waiting for ${what}; events: ${JSON.stringify(this.events.map((e) => e.ev))}\n${this.stderr}`));
      }, timeoutMs);
      const done = () => { clearTimeout(timer); this.waiters.delete(check); };
      this.waiters.add(check);
      check();
    });
  }

  messages(topic) {
    return this.events.filter((e) => e.ev === 'message' && (topic === undefined || e.topic === topic));
  }

  async connect(broker, { username = 'guest', password = 'guest' } = {}) {
    this.send({ op: 'connect', host: '127.0.0.1', port: broker.mqttPort, username, password, client_id: `device-${this.name}-${process.pid}` });
    const ev = await this.waitFor((e) => e.ev === 'connected' || e.ev === 'connect_failed', { what: 'CONNACK' });
    if (ev.ev !== 'connected') throw new Error(`device ${this.name}: CONNECT refused with ${ev.reason_code}`);
  }

  async subscribe(topic, qos = 1) {
    const from = this.events.length;
    this.send({ op: 'subscribe', topic, qos });
    const sent = await this.waitFor((e) => e.ev === 'subscribe_sent' && e.topic === topic, { what: `subscribe ${topic}`, from });
    const ev = await this.waitFor((e) => e.ev === 'subscribed' && e.mid === sent.mid, { what: `SUBACK for ${topic}`, from });
    if (ev.reason_codes.length !== 1 || ev.reason_codes[0] !== qos) {
      throw new Error(`device ${this.name}: SUBACK ${JSON.stringify(ev.reason_codes)} for ${topic}, wanted [${qos}]`);
    }
  }

  /** Publishes and, for QoS > 0, waits for the broker's acknowledgement. */
  async publish(topic, payload, { qos = 1, retain = false, userProperties } = {}) {
    const from = this.events.length;
    this.send({ op: 'publish', topic, payload_b64: Buffer.from(payload).toString('base64'), qos, retain, user_properties: userProperties });
    const queued = await this.waitFor((e) => e.ev === 'publish_queued' && e.topic === topic, { what: 'publish', from });
    await this.waitFor((e) => e.ev === 'published' && e.mid === queued.mid, { what: `PUBACK for ${topic}`, from });
  }

  waitMessages(topic, count, opts = {}) {
    return this.waitFor(() => this.messages(topic).length >= count, { what: `${count} message(s) on ${topic}`, ...opts })
      .then(() => this.messages(topic));
  }

  async close() {
    if (this.proc.exitCode !== null) return;
    this.send({ op: 'disconnect' });
    const exited = new Promise((r) => this.proc.once('exit', r));
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
  }
}
