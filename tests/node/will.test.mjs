// Will messages with mqtt.js: published when the socket is destroyed, not on a clean end().
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, Clients, Inbox, withLog, subscribe, uid } from './helpers.mjs';

let broker;
const clients = new Clients();
before(async () => { broker = await startBroker(); });
afterEach(() => clients.endAll());
after(async () => { await broker?.stop(); broker?.cleanup(); });
const t = (fn) => withLog(() => broker, fn);

for (const protocolVersion of [4, 5]) {
  const v = protocolVersion === 4 ? 'v3.1.1' : 'v5';

  test(`${v} will on abrupt socket destroy`, t(async () => {
    const topic = `${uid('node')}/will`;
    const watcher = await clients.connect(broker, { protocolVersion: 5 });
    const inbox = new Inbox(watcher);
    await subscribe(watcher, topic, { qos: 1 });
    const will = { topic, payload: Buffer.from('gone'), qos: 1, retain: false };
    if (protocolVersion === 5) {
      will.properties = { userProperties: { reason: 'test' }, contentType: 'text/plain' };
    }
    const c = await clients.connect(broker, { protocolVersion, will });
    c.stream.destroy();
    const m = await inbox.one(5000);
    assert.equal(m.topic, topic);
    assert.equal(m.payload.toString(), 'gone');
    assert.equal(m.packet.qos, 1);
    if (protocolVersion === 5) {
      assert.deepEqual({ ...m.packet.properties.userProperties }, { reason: 'test' });
      assert.equal(m.packet.properties.contentType, 'text/plain');
    }
  }));

  test(`${v} no will on clean end()`, t(async () => {
    const topic = `${uid('node')}/nowill`;
    const watcher = await clients.connect(broker, { protocolVersion: 5 });
    const inbox = new Inbox(watcher);
    await subscribe(watcher, topic, { qos: 1 });
    const c = await clients.connect(broker, {
      protocolVersion, will: { topic, payload: Buffer.from('must not appear'), qos: 1, retain: false },
    });
    await new Promise((resolve) => c.end(false, {}, resolve));
    await inbox.none(1000);
  }));
}
