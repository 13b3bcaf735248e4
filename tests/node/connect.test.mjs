// CONNECT with mqtt.js: guest/guest on 3.1.1 and 5.0, refusals surface as an error event with
// the right code, and nothing hangs or reconnects.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, Clients, withLog, ferrymqOnly, waitEvent, uid } from './helpers.mjs';

let broker;
const clients = new Clients();
before(async () => { broker = await startBroker(); });
afterEach(() => clients.endAll());
after(async () => { await broker?.stop(); broker?.cleanup(); });
const t = (fn) => withLog(() => broker, fn);

test('v3.1.1 guest/guest is accepted', t(async () => {
  const c = await clients.connect(broker, { protocolVersion: 4 });
  assert.equal(c.connack.returnCode, 0);
  assert.equal(c.connack.sessionPresent, false);
}));

test('v5 guest/guest is accepted', t(async () => {
  const c = await clients.connect(broker, { protocolVersion: 5 });
  assert.equal(c.connack.reasonCode, 0);
  assert.equal(c.connack.sessionPresent, false);
}));

test('v5 CONNACK announces the broker limits', ferrymqOnly, t(async () => {
  const c = await clients.connect(broker, { protocolVersion: 5 });
  const p = c.connack.properties;
  assert.equal(p.receiveMaximum, 128);
  assert.equal(p.topicAliasMaximum, 64);
  assert.equal(p.maximumPacketSize, 1048576);
}));

test('v5 empty client id gets an assigned identifier', t(async () => {
  const c = await clients.connect(broker, { protocolVersion: 5, clientId: '' });
  const assigned = c.connack.properties?.assignedClientIdentifier;
  assert.equal(typeof assigned, 'string');
  assert.ok(assigned.length > 0);
}));

async function refused(opts) {
  const { client, err } = await clients.connectError(broker, opts);
  // No hang: the connection is closed and (reconnectPeriod 0) stays closed.
  if (client.connected || !client.disconnected) await waitEvent(client, 'close', 5000);
  assert.equal(client.connected, false);
  return err.code;
}

test('v5 wrong password: error event with a refusal code, no hang', t(async () => {
  const code = await refused({ protocolVersion: 5, username: 'guest', password: 'wrong' });
  assert.ok([134, 135].includes(code), `code ${code}`);
}));

test('v5 wrong password: reason code 0x86', ferrymqOnly, t(async () => {
  const code = await refused({ protocolVersion: 5, username: 'guest', password: 'wrong' });
  assert.equal(code, 0x86);
}));

test('v3.1.1 wrong password: error event with a refusal code, no hang', t(async () => {
  const code = await refused({ protocolVersion: 4, username: 'guest', password: 'wrong' });
  assert.ok([4, 5].includes(code), `code ${code}`);
}));

test('v3.1.1 wrong password: return code 4', ferrymqOnly, t(async () => {
  const code = await refused({ protocolVersion: 4, username: 'guest', password: 'wrong' });
  assert.equal(code, 4);
}));

test('v5 without username: 0x87 not authorized', t(async () => {
  assert.equal(await refused({ protocolVersion: 5 }), 0x87);
}));

test('v3.1.1 without username: return code 5', t(async () => {
  assert.equal(await refused({ protocolVersion: 4 }), 5);
}));

test('connectAsync rejects on a wrong password', t(async () => {
  const { connectAsync } = await import('mqtt');
  await assert.rejects(
    connectAsync(broker.url, { username: 'guest', password: 'nope', reconnectPeriod: 0, protocolVersion: 5, clientId: uid('a') }),
    (err) => [134, 135].includes(err.code),
  );
}));
