// The example page's logic: connect to FerryMQ over WebSockets with a username and password,
// subscribe, publish "Hello World!", list what arrives, and show the connection's state.
//
// mqtt.js does the protocol work, including reconnecting (every `reconnectPeriod` ms after the
// connection drops) and re-subscribing once reconnected. A refused CONNECT (wrong password,
// CONNACK with an error code) stops the reconnecting: retrying the same credentials cannot help.
import mqtt from 'mqtt';

const $ = (id) => document.getElementById(id);
const ui = {
  connectForm: $('connect-form'),
  url: $('url'),
  username: $('username'),
  password: $('password'),
  connect: $('connect'),
  disconnect: $('disconnect'),
  state: $('state'),
  error: $('error'),
  subscribeForm: $('subscribe-form'),
  subTopic: $('sub-topic'),
  subscribe: $('subscribe'),
  subscriptions: $('subscriptions'),
  publishForm: $('publish-form'),
  pubTopic: $('pub-topic'),
  pubMessage: $('pub-message'),
  pubQos: $('pub-qos'),
  publish: $('publish'),
  messages: $('messages'),
};

/** @type {import('mqtt').MqttClient | null} */
let client = null;
const decoder = new TextDecoder();

function setState(state) {
  ui.state.textContent = state;
  ui.state.dataset.state = state;
  const connected = state === 'connected';
  ui.subscribe.disabled = !connected;
  ui.publish.disabled = !connected;
  ui.connect.disabled = client !== null;
  ui.disconnect.disabled = client === null;
}

function showError(text) {
  ui.error.textContent = text;
}

function addMessage(topic, payload, packet) {
  const li = document.createElement('li');
  const t = document.createElement('span');
  t.className = 'topic';
  t.textContent = topic;
  const m = document.createElement('span');
  m.className = 'payload';
  m.textContent = decoder.decode(payload);
  li.append(t, m);
  li.dataset.qos = String(packet.qos);
  li.dataset.retain = String(packet.retain);
  ui.messages.append(li);
}

function connect() {
  if (client) return;
  showError('');
  const c = mqtt.connect(ui.url.value.trim(), {
    username: ui.username.value || undefined,
    password: ui.password.value || undefined,
    clientId: `ferrymq-example-${Math.random().toString(16).slice(2, 10)}`,
    protocolVersion: 5,
    clean: true,
    keepalive: 30,
    connectTimeout: 10_000,
    reconnectPeriod: 2_000,
  });
  client = c;
  setState('connecting');

  c.on('connect', () => {
    showError('');
    setState('connected');
  });
  c.on('reconnect', () => setState('reconnecting'));
  c.on('offline', () => setState('offline'));
  c.on('close', () => {
    if (client === c && ui.state.dataset.state === 'connected') setState('offline');
  });
  c.on('error', (err) => {
    // A numeric code is the CONNACK reason code of a refused CONNECT (4/5 in MQTT 3.1.1,
    // 0x86/0x87 in MQTT 5 for bad credentials): mqtt.js does not retry those, so the client
    // is finished. Other errors (socket, protocol) are shown while mqtt.js keeps reconnecting.
    const refused = typeof err?.code === 'number';
    showError(refused ? `${err.message} (CONNACK code ${err.code})` : String(err?.message ?? err));
    if (refused && client === c) {
      client = null;
      c.end(true);
      setState('error');
    }
  });
  c.on('message', addMessage);
}

function disconnect() {
  if (!client) return;
  const c = client;
  client = null;
  c.end(false, {}, () => setState('closed'));
  setState('closed');
  ui.subscriptions.textContent = '';
}

ui.connectForm.addEventListener('submit', (e) => {
  e.preventDefault();
  connect();
});
ui.disconnect.addEventListener('click', disconnect);

ui.subscribeForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const filter = ui.subTopic.value.trim();
  if (!client || !filter) return;
  client.subscribe(filter, { qos: 1 }, (err, granted) => {
    if (err) {
      showError(`subscribe ${filter}: ${err.message}`);
      return;
    }
    const g = granted?.[0];
    if (g && g.qos >= 0x80) {
      showError(`subscribe ${filter}: refused (reason code 0x${g.qos.toString(16)})`);
      return;
    }
    const item = document.createElement('code');
    item.textContent = `${filter} `;
    ui.subscriptions.append(item);
  });
});

ui.publishForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const topic = ui.pubTopic.value.trim();
  if (!client || !topic) return;
  client.publish(topic, ui.pubMessage.value, { qos: Number(ui.pubQos.value) }, (err) => {
    if (err) showError(`publish ${topic}: ${err.message}`);
  });
});

setState('closed');
