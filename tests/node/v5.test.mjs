// MQTT 5 features through mqtt.js: user properties, topic aliases (auto-assigned by the client,
// and server-to-client), request/response properties.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, Clients, Inbox, withLog, ferrymqOnly, subscribe, publish, uid } from './helpers.mjs';

let broker;
const clients = new Clients();
before(async () => { broker = await startBroker(); });
afterEach(() => clients.endAll());
after(async () => { await broker?.stop(); broker?.cleanup(); });
const t = (fn) => withLog(() => broker, fn);
const v5 = (extra = {}) => ({ protocolVersion: 5, ...extra });

test('user properties pass through', t(async () => {
  const sub = await clients.connect(broker, v5());
  const pub = await clients.connect(broker, v5());
  const inbox = new Inbox(sub);
  const topic = `${uid('node')}/up`;
  await subscribe(sub, topic);
  await publish(pub, topic, 'x', {
    qos: 1,
    properties: { userProperties: { region: 'eu', tag: ['a', 'b'], empty: '' } },
  });
  const m = await inbox.one();
  assert.deepEqual({ ...m.packet.properties.userProperties }, { region: 'eu', tag: ['a', 'b'], empty: '' });
  assert.deepEqual(Object.keys(m.packet.properties.userProperties), ['region', 'tag', 'empty']);
}));

test('client auto-assigns topic aliases and the broker resolves them', t(async () => {
  const sub = await clients.connect(broker, v5());
  const pub = await clients.connect(broker, v5({ autoAssignTopicAlias: true }));
  assert.ok(pub.connack.properties?.topicAliasMaximum >= 1, 'broker announced no Topic Alias Maximum');
  const sent = [];
  pub.on('packetsend', (p) => { if (p.cmd === 'publish') sent.push({ topic: p.topic, alias: p.properties?.topicAlias }); });
  const inbox = new Inbox(sub);
  const topic = `${uid('node')}/a/fairly/long/topic/name`;
  await subscribe(sub, topic);
  for (let i = 0; i < 4; i++) await publish(pub, topic, `m${i}`, { qos: 1 });
  const got = await inbox.take(4);
  assert.deepEqual(got.map((m) => [m.topic, m.payload.toString()]),
    [0, 1, 2, 3].map((i) => [topic, `m${i}`]));
  // On the wire: first publish registers the alias, the next ones use it with an empty topic.
  assert.equal(sent[0].topic, topic);
  assert.ok(sent[0].alias >= 1);
  assert.ok(sent.slice(1).every((p) => p.topic === '' && p.alias === sent[0].alias), JSON.stringify(sent));
}));

test('subscriber allowing topic aliases receives correct topics', t(async () => {
  const sub = await clients.connect(broker, v5({ properties: { topicAliasMaximum: 3 } }));
  const pub = await clients.connect(broker, v5());
  const inbox = new Inbox(sub);
  const received = [];
  sub.on('packetreceive', (p) => { if (p.cmd === 'publish') received.push(p.properties?.topicAlias); });
  const base = uid('node');
  await subscribe(sub, `${base}/#`);
  const topics = ['a', 'b', 'a', 'c', 'd', 'a', 'b'].map((x) => `${base}/${x}`);
  for (const [i, tp] of topics.entries()) await publish(pub, tp, `${i}`, { qos: 1 });
  const got = await inbox.take(topics.length);
  assert.deepEqual(got.map((m) => m.topic), topics);
  assert.deepEqual(got.map((m) => m.payload.toString()), topics.map((_, i) => `${i}`));
  assert.ok(received.every((a) => a === undefined || (a >= 1 && a <= 3)), JSON.stringify(received));
}));

test('broker uses topic aliases towards a client that allows them', ferrymqOnly, t(async () => {
  const sub = await clients.connect(broker, v5({ properties: { topicAliasMaximum: 5 } }));
  const pub = await clients.connect(broker, v5());
  const inbox = new Inbox(sub);
  const wire = [];
  sub.on('packetreceive', (p) => { if (p.cmd === 'publish') wire.push(p.properties?.topicAlias); });
  const topic = `${uid('node')}/server/alias`;
  await subscribe(sub, topic);
  for (let i = 0; i < 3; i++) await publish(pub, topic, `${i}`, { qos: 1 });
  const got = await inbox.take(3);
  assert.deepEqual(got.map((m) => m.topic), [topic, topic, topic]);
  assert.ok(wire.some((a) => a !== undefined), 'no topic alias used');
}));

test('response topic and correlation data pass through', t(async () => {
  const requester = await clients.connect(broker, v5());
  const responder = await clients.connect(broker, v5());
  const reqTopic = `${uid('node')}/req`;
  const replyTopic = `${uid('node')}/reply`;
  const reqInbox = new Inbox(responder);
  const replyInbox = new Inbox(requester);
  await subscribe(responder, reqTopic);
  await subscribe(requester, replyTopic);
  const corr = Buffer.from([0, 1, 2, 250, 255]);
  await publish(requester, reqTopic, 'ping', {
    qos: 1, properties: { responseTopic: replyTopic, correlationData: corr, contentType: 'text/plain' },
  });
  const req = await reqInbox.one();
  assert.equal(req.packet.properties.responseTopic, replyTopic);
  assert.ok(Buffer.from(req.packet.properties.correlationData).equals(corr));
  assert.equal(req.packet.properties.contentType, 'text/plain');
  await publish(responder, req.packet.properties.responseTopic, 'pong', {
    qos: 1, properties: { correlationData: req.packet.properties.correlationData },
  });
  const reply = await replyInbox.one();
  assert.equal(reply.topic, replyTopic);
  assert.equal(reply.payload.toString(), 'pong');
  assert.ok(Buffer.from(reply.packet.properties.correlationData).equals(corr));
}));

test('message expiry interval is forwarded', t(async () => {
  const sub = await clients.connect(broker, v5());
  const pub = await clients.connect(broker, v5());
  const inbox = new Inbox(sub);
  const topic = `${uid('node')}/exp`;
  await subscribe(sub, topic);
  await publish(pub, topic, 'x', { qos: 1, properties: { messageExpiryInterval: 120 } });
  const m = await inbox.one();
  const left = m.packet.properties.messageExpiryInterval;
  assert.ok(left > 0 && left <= 120, `expiry ${left}`);
}));
