// Starts the broker under test: FerryMQ ($FERRYMQ_BIN, default target/release/ferrymq), or
// Mosquitto when FERRYMQ_TEST_BROKER=mosquitto (the reference the suite is validated against).
// Every listener is on 127.0.0.1 at a free port: MQTT/TCP, MQTT/WebSocket, and MQTT/WSS when a
// certificate is given. Ports stay the same across restart(), like a real broker restarting.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODE, REPO, freePort, waitForPort, sleep, tail } from './util.mjs';

export const FERRYMQ_BIN = process.env.FERRYMQ_BIN || path.join(REPO, 'target', 'release', 'ferrymq');
/** The WebSocket path the tests use: FerryMQ serves /ws (RabbitMQ's) and /mqtt; Mosquitto any. */
export const WS_PATH = '/ws';
export const HOST = '127.0.0.1';

export class Broker {
  /**
   * @param {object} o
   * @param {string} o.dir                 private temp directory (config, data, log)
   * @param {{cert: string, key: string}} [o.tls]   enables the WSS listener
   * @param {string[]} [o.trustedProxies]  CIDRs whose X-Forwarded-For is believed (FerryMQ)
   * @param {string} [o.extraToml]         more FerryMQ config (sections other than those below)
   */
  constructor({ dir, tls, trustedProxies = [], extraToml = '' }) {
    this.mode = MODE;
    this.dir = dir;
    this.tls = tls;
    this.trustedProxies = trustedProxies;
    this.extraToml = extraToml;
    this.logFile = path.join(dir, 'broker.log');
    this.dataDir = path.join(dir, 'data');
    fs.mkdirSync(this.dataDir, { recursive: true });
    this.proc = null;
    this.mqttPort = 0;
    this.wsPort = 0;
    this.wssPort = 0;
    this.mqttTlsPort = 0; // FerryMQ only: MQTT over TLS, enabled along with the certificate
    this.managementPort = 0; // FerryMQ only: the management API, for /metrics
  }

  /** FerryMQ only: one value of /metrics (such as `ferrymq_connections_hibernated`). */
  async metric(name) {
    const res = await fetch(`http://${HOST}:${this.managementPort}/metrics`);
    const text = await res.text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    if (!line) throw new Error(`no metric ${name} in /metrics`);
    return Number(line.split(' ')[1]);
  }

  get wsUrl() { return `ws://${HOST}:${this.wsPort}${WS_PATH}`; }
  get wssUrl() { return `wss://${HOST}:${this.wssPort}${WS_PATH}`; }
  get running() { return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null; }

  logTail(n = 40) { return tail(this.logFile, n); }
  log() { try { return fs.readFileSync(this.logFile, 'utf8'); } catch { return ''; } }

  async start() {
    if (!this.mqttPort) {
      this.mqttPort = await freePort();
      this.wsPort = await freePort();
      this.managementPort = await freePort();
      if (this.tls) {
        this.wssPort = await freePort();
        this.mqttTlsPort = await freePort();
      }
    }
    const cmd = this.mode === 'mosquitto' ? this.#mosquittoCmd() : this.#ferrymqCmd();
    fs.appendFileSync(this.logFile, `==== ${cmd.join(' ')}\n`);
    const fd = fs.openSync(this.logFile, 'a');
    this.proc = spawn(cmd[0], cmd.slice(1), { cwd: this.dir, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    const proc = this.proc;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    this.exited = exited;
    try {
      for (const port of [this.mqttPort, this.wsPort, this.wssPort].filter(Boolean)) {
        await waitForPort(port, { timeoutMs: 20_000, alive: () => proc.exitCode === null && proc.signalCode === null });
      }
    } catch (err) {
      await this.stop();
      throw new Error(`${this.mode} did not start: ${err.message}\n${this.logTail()}`);
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000) {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(t);
    }
  }

  async restart() {
    await this.stop();
    await sleep(200);
    await this.start();
  }

  #ferrymqCmd() {
    if (!fs.existsSync(FERRYMQ_BIN)) {
      throw new Error(`FerryMQ binary not found at ${FERRYMQ_BIN}: run \`cargo build --release\` or set FERRYMQ_BIN`);
    }
    const cmd = [FERRYMQ_BIN, 'serve',
      '--mqtt-listen', `${HOST}:${this.mqttPort}`,
      '--ws-listen', `${HOST}:${this.wsPort}`,
      '--management-listen', `${HOST}:${this.managementPort}`,
      '--data-dir', this.dataDir,
      '--log-level', 'debug'];
    const toml = ferrymqConfig({ tls: this.tls, wssPort: this.wssPort, mqttTlsPort: this.mqttTlsPort, trustedProxies: this.trustedProxies, extraToml: this.extraToml });
    if (toml) {
      const file = path.join(this.dir, 'ferrymq.toml');
      fs.writeFileSync(file, toml);
      cmd.push('--config', file);
    }
    return cmd;
  }

  #mosquittoCmd() {
    const passwd = path.join(this.dir, 'passwd');
    if (!fs.existsSync(passwd)) {
      execFileSync('mosquitto_passwd', ['-b', '-c', passwd, 'guest', 'guest'], { stdio: 'ignore' });
      fs.chmodSync(passwd, 0o600);
    }
    const lines = [
      // Started as root, Mosquitto would switch to user "mosquitto", which cannot read our
      // private temp directory.
      `user ${os.userInfo().username}`,
      'per_listener_settings false',
      'persistence false',
      'log_dest stderr',
      'log_type all',
      'connection_messages true',
      'allow_anonymous false',
      `password_file ${passwd}`,
      `listener ${this.mqttPort} ${HOST}`,
      `listener ${this.wsPort} ${HOST}`,
      'protocol websockets',
    ];
    if (this.tls) {
      lines.push(`listener ${this.wssPort} ${HOST}`, 'protocol websockets',
        `certfile ${this.tls.cert}`, `keyfile ${this.tls.key}`);
    }
    const conf = path.join(this.dir, 'mosquitto.conf');
    fs.writeFileSync(conf, lines.join('\n') + '\n');
    return [process.env.MOSQUITTO_BIN || 'mosquitto', '-c', conf];
  }
}

/**
 * FerryMQ's config file (ferrymq.example.toml names the keys): the WSS listener with its
 * certificate, and the proxies whose X-Forwarded-For is believed. '' when none is needed.
 * A configured certificate also enables MQTT over TLS (default 0.0.0.0:8883): it is moved to a
 * free loopback port so that parallel runs never collide.
 */
export function ferrymqConfig({ tls, wssPort, mqttTlsPort, trustedProxies, extraToml = '' }) {
  const out = [];
  if (tls) {
    out.push('[tls]', `cert_file = ${JSON.stringify(tls.cert)}`, `key_file = ${JSON.stringify(tls.key)}`,
      `listen = [${JSON.stringify(`${HOST}:${mqttTlsPort}`)}]`, '');
    out.push('[websocket]', `tls_listen = [${JSON.stringify(`${HOST}:${wssPort}`)}]`, '');
  }
  if (trustedProxies.length) {
    out.push('[proxy]', `trusted = ${JSON.stringify(trustedProxies)}`, '');
  }
  if (extraToml) out.push(extraToml);
  return out.join('\n');
}
