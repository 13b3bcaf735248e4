// mqtt.js reconnects after the broker restarts on the same port and keeps working.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, Clients, Inbox, withLog, subscribe, publish, waitEvent, uid } from './helpers.mjs';

let broker;
const clients = new Clients();
afterEach(() => clients.endAll());
after(async () => { await broker?.stop(); broker?.cleanup(); });
const t = (fn) => withLog(() => broker, fn);

for (const protocolVersion of [4, 5]) {
  test(`v${protocolVersion === 4 ? '3.1.1' : '5'} client reconnects after a broker restart`, t(async () => {
    if (broker) { await broker.stop(); broker.cleanup(); }
    broker = await startBroker();
    const topic = `${uid('node')}/restart`;
    const opts = { protocolVersion, reconnectPeriod: 200 };
    const sub = await clients.connect(broker, opts);
    const pub = await clients.connect(broker, opts);
    const inbox = new Inbox(sub);
    await subscribe(sub, topic, { qos: 1 });
    await publish(pub, topic, 'before', { qos: 1 });
    assert.equal((await inbox.one()).payload.toString(), 'before');

    const closed = Promise.all([waitEvent(sub, 'close', 10000), waitEvent(pub, 'close', 10000)]);
    const reconnected = Promise.all([waitEvent(sub, 'connect', 20000), waitEvent(pub, 'connect', 20000)]);
    await broker.restart();
    await closed;
    await reconnected;
    assert.ok(sub.connected && pub.connected);

    // mqtt.js re-subscribes by itself (resubscribe: true); the broker must serve it again.
    let delivered = false;
    for (let i = 0; i < 20 && !delivered; i++) {
      await publish(pub, topic, `after-${i}`, { qos: 1 });
      try {
        const m = await inbox.one(500);
        assert.ok(m.payload.toString().startsWith('after-'));
        delivered = true;
      } catch { /* re-subscription may still be in flight */ }
    }
    assert.ok(delivered, 'no message delivered after the restart');
  }));
}
