// Test harness loaded into real Chromium: drives mqtt.js clients (the same browser build the
// example page uses, served from examples/browser/node_modules) and keeps what they saw, so that
// the Node side reads state with small page.evaluate() calls.
import mqtt from '/vendor/mqtt.esm.js';

const clients = new Map();
const decoder = new TextDecoder();

function record(name) {
  const r = clients.get(name);
  if (!r) throw new Error(`no client named ${name}`);
  return r;
}

function timeout(ms, what) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms));
}

/** Waits until `fn()` is truthy, re-checking on every client event. */
function until(rec, fn, ms, what) {
  return Promise.race([
    new Promise((resolve) => {
      const check = () => {
        const v = fn();
        if (v) { rec.waiters.delete(check); resolve(v); }
      };
      rec.waiters.add(check);
      check();
    }),
    timeout(ms, what),
  ]);
}

/** A repeatable byte pattern (xorshift32), the same as the Node side's. */
function pattern(length, seed) {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

async function sha256Hex(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return [...d].map((b) => b.toString(16).padStart(2, '0')).join('');
}

window.harness = {
  /**
   * Connects a named client. Resolves {ok: true, connack} or {ok: false, error} on the first
   * CONNACK, error, or close; never hangs (mqtt.js's connectTimeout plus our own timeout).
   */
  connect(name, url, options = {}, waitMs = 20_000) {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 15_000, ...options });
    const rec = { c, messages: [], events: [], errors: [], connacks: [], waiters: new Set() };
    clients.set(name, rec);
    const note = (ev) => { rec.events.push(ev); for (const w of [...rec.waiters]) w(); };
    c.on('message', (topic, payload, packet) => {
      const bytes = new Uint8Array(payload);
      rec.messages.push({
        topic,
        bytes,
        text: decoder.decode(bytes),
        length: bytes.length,
        qos: packet.qos,
        retain: packet.retain,
        userProperties: packet.properties?.userProperties ?? null,
      });
      note('message');
    });
    c.on('connect', (connack) => {
      rec.connacks.push({ returnCode: connack.returnCode ?? null, reasonCode: connack.reasonCode ?? null, sessionPresent: connack.sessionPresent });
      note('connect');
    });
    c.on('error', (err) => {
      rec.errors.push({ message: String(err?.message ?? err), code: typeof err?.code === 'number' ? err.code : null });
      note('error');
    });
    for (const ev of ['reconnect', 'close', 'offline', 'end', 'disconnect']) c.on(ev, () => note(ev));
    return Promise.race([
      until(rec, () => {
        if (rec.connacks.length) return { ok: true, connack: rec.connacks[0] };
        if (rec.errors.length) return { ok: false, error: rec.errors[0], events: [...rec.events] };
        if (rec.events.includes('close')) return { ok: false, error: { message: 'closed before CONNACK', code: null }, events: [...rec.events] };
        return null;
      }, waitMs, `CONNACK of ${name}`),
    ]);
  },

  async subscribe(name, filter, options = { qos: 1 }) {
    const granted = await record(name).c.subscribeAsync(filter, options);
    return granted.map((g) => ({ topic: g.topic, qos: g.qos }));
  },

  async publish(name, topic, payload, options = {}) {
    await record(name).c.publishAsync(topic, payload, options);
    return true;
  },

  /** Publishes `length` pattern bytes; returns their SHA-256. */
  async publishPattern(name, topic, length, seed, options = {}) {
    const bytes = pattern(length, seed);
    await record(name).c.publishAsync(topic, bytes, options);
    return sha256Hex(bytes);
  },

  /** Waits for `count` messages on `topic` and returns them (bytes left out). */
  async waitMessages(name, topic, count, ms = 20_000) {
    const rec = record(name);
    const pick = () => rec.messages.filter((m) => m.topic === topic);
    await until(rec, () => pick().length >= count, ms, `${count} message(s) on ${topic} at ${name}`);
    return pick().map(({ bytes, ...rest }) => rest);
  },

  /** Checks the first message on `topic` against the pattern, byte by byte. */
  async checkPattern(name, topic, length, seed) {
    const m = record(name).messages.find((x) => x.topic === topic);
    if (!m) return { found: false };
    const want = pattern(length, seed);
    let mismatches = 0;
    let firstMismatch = -1;
    for (let i = 0; i < Math.max(want.length, m.bytes.length); i++) {
      if (want[i] !== m.bytes[i]) {
        mismatches++;
        if (firstMismatch < 0) firstMismatch = i;
      }
    }
    return { found: true, length: m.bytes.length, mismatches, firstMismatch, sha256: await sha256Hex(m.bytes) };
  },

  /** Waits until the client's event log satisfies: `count` occurrences of `event`. */
  async waitEvent(name, event, count = 1, ms = 20_000) {
    const rec = record(name);
    await until(rec, () => rec.events.filter((e) => e === event).length >= count, ms, `${count} '${event}' event(s) at ${name}`);
    return [...rec.events];
  },

  state(name) {
    const rec = record(name);
    return {
      connected: rec.c.connected,
      events: [...rec.events],
      errors: [...rec.errors],
      connacks: [...rec.connacks],
      messageCount: rec.messages.length,
    };
  },

  async end(name, force = false) {
    const rec = record(name);
    await rec.c.endAsync(force);
    return true;
  },
};

window.harnessPattern = pattern;
document.getElementById('ready').textContent = 'ready';
