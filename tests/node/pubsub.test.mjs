// Publish / subscribe with mqtt.js: QoS 0/1/2 on 3.1.1 and 5.0, large payloads, retained.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startBroker, Clients, Inbox, withLog, subscribe, publish, uid } from './helpers.mjs';

let broker;
const clients = new Clients();
before(async () => { broker = await startBroker(); });
afterEach(() => clients.endAll());
after(async () => { await broker?.stop(); broker?.cleanup(); });
const t = (fn) => withLog(() => broker, fn);

for (const protocolVersion of [4, 5]) {
  for (const qos of [0, 1, 2]) {
    test(`v${protocolVersion === 4 ? '3.1.1' : '5'} QoS ${qos} round trip`, t(async () => {
      const sub = await clients.connect(broker, { protocolVersion });
      const pub = await clients.connect(broker, { protocolVersion });
      const inbox = new Inbox(sub);
      const topic = `${uid('node')}/q${qos}`;
      const granted = await subscribe(sub, topic, { qos: 2 });
      assert.equal(granted[0].qos, 2);
      for (let i = 0; i < 10; i++) await publish(pub, topic, `m${i}`, { qos });
      const got = await inbox.take(10);
      assert.deepEqual(got.map((m) => m.payload.toString()), [...Array(10).keys()].map((i) => `m${i}`));
      for (const m of got) {
        assert.equal(m.topic, topic);
        assert.equal(m.packet.qos, qos);
        assert.equal(m.packet.retain, false);
      }
      await inbox.none(300);
    }));
  }
}

test('delivery QoS is capped by the subscription', t(async () => {
  const sub = await clients.connect(broker, { protocolVersion: 5 });
  const pub = await clients.connect(broker, { protocolVersion: 5 });
  const inbox = new Inbox(sub);
  const topic = `${uid('node')}/cap`;
  await subscribe(sub, topic, { qos: 1 });
  await publish(pub, topic, 'x', { qos: 2 });
  assert.equal((await inbox.one()).packet.qos, 1);
}));

test('256 KiB payload round trip', t(async () => {
  const sub = await clients.connect(broker, { protocolVersion: 5 });
  const pub = await clients.connect(broker, { protocolVersion: 4 });
  const inbox = new Inbox(sub);
  const topic = `${uid('node')}/big`;
  await subscribe(sub, topic, { qos: 1 });
  const payload = randomBytes(256 * 1024);
  await publish(pub, topic, payload, { qos: 1 });
  const m = await inbox.one(10000);
  assert.equal(m.payload.length, payload.length);
  assert.ok(m.payload.equals(payload), 'payload differs');
}));

test('retained message reaches a late subscriber', t(async () => {
  const pub = await clients.connect(broker, { protocolVersion: 4 });
  const topic = `${uid('node')}/retained`;
  await publish(pub, topic, 'kept', { qos: 1, retain: true });
  for (const protocolVersion of [4, 5]) {
    const late = await clients.connect(broker, { protocolVersion });
    const inbox = new Inbox(late);
    await subscribe(late, topic, { qos: 1 });
    const m = await inbox.one();
    assert.equal(m.payload.toString(), 'kept');
    assert.equal(m.packet.retain, true);
  }
  await publish(pub, topic, '', { qos: 1, retain: true });
  const after = await clients.connect(broker, { protocolVersion: 4 });
  const inbox = new Inbox(after);
  await subscribe(after, topic, { qos: 1 });
  await inbox.none(500);
}));

test('wildcard subscription', t(async () => {
  const base = uid('node');
  const sub = await clients.connect(broker, { protocolVersion: 5 });
  const pub = await clients.connect(broker, { protocolVersion: 5 });
  const inbox = new Inbox(sub);
  await subscribe(sub, `${base}/+/temp`, { qos: 1 });
  await publish(pub, `${base}/room1/temp`, '21');
  await publish(pub, `${base}/room1/hum`, '40');
  await publish(pub, `${base}/room2/temp`, '19');
  const got = await inbox.take(2);
  assert.deepEqual(got.map((m) => [m.topic, m.payload.toString()]),
    [[`${base}/room1/temp`, '21'], [`${base}/room2/temp`, '19']]);
  await inbox.none(300);
}));
