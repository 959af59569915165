// The cross-protocol matrix (issue 6) with npm's clients: amqplib (AMQP
// 0-9-1), mqtt (MQTT 5, and MQTT 3.1.1 in two cells) and @stomp/stompjs
// (STOMP 1.2, over a plain TCP socket) against the junction binary.
//
// Every source protocol sends to every target protocol, persistent (AMQP
// delivery mode 2, MQTT QoS 1, STOMP persistent:true), through amq.topic (the
// target subscribed with the MQTT filter sensors/+/temp, an AMQP queue bound
// with sensors.*.temp, STOMP /topic/sensors.*.temp) and, where the target can
// consume a queue by name (AMQP, STOMP /queue/...), through a queue; an MQTT
// source reaches that queue through a binding to amq.topic. Each source sends
// a rich message, a body of every byte value with every property both sides
// can express, then an empty one with none. What the target must see is
// derived from one model of the router's message (Routed) and compared whole,
// minus the broker's provenance headers (x-junction-*), which one test checks
// on their own. A request/reply test (MQTT 5 requester, AMQP responder) and a
// retained-message test (amqplib publish with x-mqtt-retain, mqtt.js late
// subscriber) complete it. interop/matrix_test.go runs the full matrix with
// the Go clients, interop/python/test_matrix.py this subset with Python's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import amqp from 'amqplib';
import mqtt from 'mqtt';
import { Client } from '@stomp/stompjs';

const WAIT = 5000; // ms: every wait for the broker or a client has this deadline

const BINARY = Buffer.from(Array.from({ length: 256 }, (_, i) => i)); // every byte value, zeros included
const EMPTY = Buffer.alloc(0);

// User headers that AMQP headers, MQTT 5 User Properties and STOMP headers
// can all express: non-ASCII text, the characters STOMP 1.2 escapes, an
// empty value.
const HEADERS = [['s', 'str'], ['uni', 'ünï ✓'], ['esc', 'a:b\\z\nnl'], ['empty', '']];

// The AMQP properties MQTT 5 has no field for travel as these User
// Properties, in this order, after the headers (protocols/mqtt/props.go).
const AMQP_USER_PROPS = [
  ['contentEncoding', 'x-amqp-content-encoding'], ['priority', 'x-amqp-priority'],
  ['messageId', 'x-amqp-message-id'], ['timestamp', 'x-amqp-timestamp'], ['type', 'x-amqp-type'],
  ['userId', 'x-amqp-user-id'], ['appId', 'x-amqp-app-id'], ['clusterId', 'x-amqp-cluster-id'],
];

// STOMP MESSAGE headers that belong to the delivery, not the message.
const STOMP_FRAME = new Set(['subscription', 'message-id', 'ack', 'redelivered', 'content-length']);

const CONTENT_TYPE = 'application/x-matrix; v=1';

let broker, data, ports;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function waitListening(p, deadlineMs) {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    const ok = await new Promise((resolve) => {
      const c = tcpConnect(p, '127.0.0.1', () => { c.end(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`broker did not listen on ${p} in time`);
}

before(async () => {
  data = mkdtempSync(join(tmpdir(), 'junction-matrix-'));
  ports = { amqp: await freePort(), mqtt: await freePort(), stomp: await freePort() };
  broker = spawn(process.env.JUNCTION_BIN, ['--data-dir', data,
    '--amqp-listen', `127.0.0.1:${ports.amqp}`, '--mqtt-listen', `127.0.0.1:${ports.mqtt}`,
    '--stomp-listen', `127.0.0.1:${ports.stomp}`, '--log-level', 'warn'], // not a line per connection
  { stdio: ['ignore', 'ignore', 'inherit'], env: {} });
  for (const p of Object.values(ports)) await waitListening(p, 20000);
});

after(async () => {
  const exited = new Promise((resolve) => broker.once('exit', resolve));
  broker.kill('SIGTERM');
  await exited;
  rmSync(data, { recursive: true, force: true });
});

// within rejects with what it was waiting for unless p settles in WAIT.
function within(p, what) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing in ${WAIT}ms`)), WAIT); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

// inbox collects what a callback delivers; next() takes the oldest, waiting
// up to WAIT for it.
function inbox(what) {
  const items = [];
  const waiting = [];
  return {
    push(x) { const w = waiting.shift(); if (w) w(x); else items.push(x); },
    next() { return items.length ? Promise.resolve(items.shift()) : within(new Promise((r) => waiting.push(r)), what); },
  };
}

// An MQTT topic and its routing key: '/' and '.' traded.
const swap = (s) => s.replace(/[./]/g, (c) => (c === '.' ? '/' : '.'));

// A header value as MQTT 5 and STOMP show it.
const text = (v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));

// Headers without the broker's provenance headers.
const mine = (h) => Object.fromEntries(Object.entries(h ?? {}).filter(([k]) => !k.startsWith('x-junction-')));

// userProps is a list of User Properties as mqtt.js shows them: an object,
// the values of a repeated key in an array.
function userProps(list) {
  const o = {};
  for (const [k, v] of list) {
    if (!(k in o)) o[k] = v;
    else if (Array.isArray(o[k])) o[k].push(v);
    else o[k] = [o[k], v];
  }
  return o;
}

// A message as the router holds it (AMQP's shape): what a source's publish
// becomes, and from which every target's view is derived. props are by
// amqplib's names, correlationId as a Buffer; headers [key, value as AMQP
// carries it], in order, repeats kept.
class Routed {
  constructor(exchange, key, body, props = {}, headers = []) {
    Object.assign(this, { exchange, key, body, props, headers });
  }

  forAmqp() {
    const { correlationId, ...rest } = this.props;
    const want = { where: [this.exchange, this.key], body: this.body, deliveryMode: 2,
      headers: Object.fromEntries(this.headers), ...rest }; // a table: the last of a repeated key
    if (correlationId) want.correlationId = correlationId.toString('utf8');
    return want;
  }

  forMqtt5() {
    const p = this.props;
    let responseTopic;
    if (p.replyTo?.startsWith('/topic/')) responseTopic = swap(p.replyTo.slice('/topic/'.length));
    else if (p.replyTo && !p.replyTo.startsWith('/')) responseTopic = swap(p.replyTo);
    const user = this.headers.filter(([k]) => !k.startsWith('x-mqtt-')).map(([k, v]) => [k, text(v)]);
    for (const [name, up] of AMQP_USER_PROPS) if (name in p) user.push([up, text(p[name])]);
    return { topic: swap(this.key), body: this.body, qos: 1, contentType: p.contentType,
      correlationData: p.correlationId, responseTopic, user: userProps(user) };
  }

  forMqtt3() {
    return { topic: swap(this.key), body: this.body, qos: 1 };
  }

  forStomp() {
    const dest = { '': '/queue/', 'amq.topic': '/topic/' }[this.exchange] + this.key;
    const h = { destination: dest, persistent: 'true' };
    for (const [k, v] of this.headers) if (!(k in h)) h[k] = text(v); // STOMP 1.2: the first counts
    const p = this.props;
    if (p.contentType) h['content-type'] = p.contentType;
    if (p.messageId) h['amqp-message-id'] = p.messageId;
    if (p.appId) h['app-id'] = p.appId;
    // STOMP headers are text: binary correlation data (not UTF-8, or with
    // NUL) is left out.
    const corr = p.correlationId && Buffer.from(p.correlationId);
    if (corr && !corr.includes(0) && Buffer.from(corr.toString('utf8'), 'utf8').equals(corr)) {
      h['correlation-id'] = corr.toString('utf8');
    }
    // A reply-to that is no STOMP destination is shown as /reply-queue/<it>
    // when a queue has that name, else (a routing key, as here) as
    // /topic/<it>.
    if (p.replyTo) h['reply-to'] = p.replyTo.startsWith('/') ? p.replyTo : `/topic/${p.replyTo}`;
    return { headers: h, body: this.body };
  }
}

// defer runs fn when test t ends, the last deferred first.
function defer(t, fn) {
  if (!t.deferred) {
    t.deferred = [];
    t.after(async () => { while (t.deferred.length) await t.deferred.pop()(); });
  }
  t.deferred.push(fn);
}

// Clients, each closed when the test ends.

async function amqpChannel(t, confirm = false) {
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${ports.amqp}`);
  defer(t, () => conn.close().catch(() => {}));
  return confirm ? conn.createConfirmChannel() : conn.createChannel();
}

// amqpInbox consumes q, acknowledging each message.
async function amqpInbox(ch, q) {
  const box = inbox(`AMQP queue ${q}`);
  await ch.consume(q, (msg) => { ch.ack(msg); box.push(msg); });
  return box;
}

async function mqttClient(t, clientId, protocolVersion = 5) {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports.mqtt}`,
    { clientId, protocolVersion, clean: true, reconnectPeriod: 0, connectTimeout: WAIT });
  defer(t, () => c.endAsync());
  c.box = inbox(`MQTT client ${clientId}`);
  c.on('message', (topic, payload, packet) => c.box.push(packet));
  return c;
}

async function mqttSubscribe(c, filter) {
  const granted = await within(c.subscribeAsync(filter, { qos: 1 }), `SUBACK for ${filter}`);
  assert.deepEqual(granted.map((g) => g.qos), [1], `SUBACK for ${filter}`);
}

function mqttPublish(c, topic, body, opts = {}) {
  return within(c.publishAsync(topic, body, { qos: 1, ...opts }), `PUBACK for ${topic}`);
}

// tcpWebSocket is a WebSocket as @stomp/stompjs uses one, over a plain TCP
// connection to the STOMP port: frames go out as stompjs serialises them
// (text, or an ArrayBuffer when the body is binary) and come in as
// ArrayBuffers, which its parser reads byte for byte, so binary bodies
// arrive whole.
function tcpWebSocket(port) {
  const sock = tcpConnect(port, '127.0.0.1');
  const ws = {
    url: `tcp://127.0.0.1:${port}`,
    readyState: 0, // CONNECTING
    binaryType: 'arraybuffer',
    onopen: null, onmessage: null, onclose: null, onerror: null,
    send(chunk) { sock.write(typeof chunk === 'string' ? chunk : new Uint8Array(chunk)); },
    close() { if (ws.readyState < 2) { ws.readyState = 2; sock.end(); } },
  };
  sock.on('connect', () => { ws.readyState = 1; ws.onopen?.(); });
  sock.on('data', (b) => ws.onmessage?.({ data: b.buffer.slice(b.byteOffset, b.byteOffset + b.length) }));
  sock.on('error', (err) => ws.onerror?.(err));
  sock.on('close', () => { ws.readyState = 3; ws.onclose?.({ code: 1000, reason: '', wasClean: true }); });
  return ws;
}

async function stompClient(t, clientId) {
  const c = new Client({
    webSocketFactory: () => tcpWebSocket(ports.stomp),
    connectHeaders: { login: 'guest', passcode: 'guest', host: '/', 'client-id': clientId },
    heartbeatIncoming: 0, heartbeatOutgoing: 0, reconnectDelay: 0, debug: () => {},
  });
  const errors = [];
  await within(new Promise((resolve, reject) => {
    c.onConnect = resolve;
    c.onStompError = (f) => { errors.push(f.headers.message); reject(new Error(`STOMP ERROR: ${f.headers.message}`)); };
    c.onWebSocketClose = () => reject(new Error('STOMP connection closed'));
    c.activate();
  }), 'STOMP CONNECTED');
  c.onStompError = (f) => errors.push(f.headers.message);
  c.onWebSocketClose = () => {};
  c.errors = errors;
  defer(t, () => c.deactivate());
  return c;
}

// stompReceipt sends a frame with a receipt header (send(receipt)) and waits
// for the RECEIPT.
function stompReceipt(c, receipt, send) {
  const got = new Promise((resolve) => c.watchForReceipt(receipt, resolve));
  send(receipt);
  return within(got, `RECEIPT ${receipt} (errors: ${c.errors})`);
}

async function stompSubscribe(t, c, destination) {
  const box = inbox(`STOMP subscriber of ${destination}`);
  let sub;
  await stompReceipt(c, 'sub-1', (receipt) => {
    sub = c.subscribe(destination, (m) => { m.ack(); box.push(m); }, { id: '1', ack: 'client-individual', receipt });
  });
  // Gone before the next test publishes to what it matches.
  defer(t, () => stompReceipt(c, 'unsub-1', (receipt) => sub.unsubscribe({ receipt })));
  return box;
}

function stompSend(c, destination, body, headers, receipt) {
  return stompReceipt(c, receipt, (r) => c.publish({ destination, binaryBody: body, headers: { ...headers, receipt: r } }));
}

// The matrix.

function cell(src, dst, route, opts = {}) {
  const name = `${src}-${dst}-${route}`;
  return { src, dst, route, name, key: `sensors.${name}.temp`, queue: `mx.${name}`, named: route === 'queue',
    replyTo: true, ...opts };
}

// attach subscribes c's target and returns what takes its next message as
// an object comparable with Routed.for<Target>().
async function attach(t, c) {
  if (c.dst === 'amqp') {
    const ch = await amqpChannel(t);
    let q = c.queue;
    if (c.named) {
      await ch.assertQueue(q, { durable: true });
    } else {
      q = (await ch.assertQueue('', { exclusive: true })).queue;
      await ch.bindQueue(q, 'amq.topic', 'sensors.*.temp');
    }
    const box = await amqpInbox(ch, q);
    return async () => {
      const m = await box.next();
      const p = m.properties;
      const got = { where: [m.fields.exchange, m.fields.routingKey], body: m.content,
        deliveryMode: p.deliveryMode, headers: mine(p.headers) };
      for (const k of ['contentType', 'correlationId', 'replyTo', 'messageId', 'appId']) {
        if (p[k] !== undefined) got[k] = p[k];
      }
      return got;
    };
  }
  if (c.dst === 'mqtt5' || c.dst === 'mqtt3') {
    const sub = await mqttClient(t, `${c.name}-sub`, c.dst === 'mqtt5' ? 5 : 4);
    await mqttSubscribe(sub, 'sensors/+/temp');
    return async () => {
      const m = await sub.box.next();
      const got = { topic: m.topic, body: m.payload, qos: m.qos };
      if (c.dst === 'mqtt3') return got;
      const p = m.properties ?? {};
      return { ...got, contentType: p.contentType, correlationData: p.correlationData,
        responseTopic: p.responseTopic, user: mine(p.userProperties) };
    };
  }
  const s = await stompClient(t, `${c.name}-sub`);
  const box = await stompSubscribe(t, s, c.named ? `/queue/${c.queue}` : '/topic/sensors.*.temp');
  return async () => {
    const m = await box.next();
    const headers = Object.fromEntries(Object.entries(mine(m.headers)).filter(([k]) => !STOMP_FRAME.has(k)));
    return { headers, body: Buffer.from(m.binaryBody) };
  };
}

// glue: an MQTT source only publishes to amq.topic, so bind the cell's queue.
async function glue(t, c) {
  if (c.named && c.src.startsWith('mqtt')) {
    const ch = await amqpChannel(t);
    await ch.bindQueue(c.queue, 'amq.topic', c.key);
  }
}

// publish sends c's rich and empty messages and returns what the router
// holds of them.
async function publish(t, c) {
  const rich = { contentType: CONTENT_TYPE, correlationId: Buffer.from(`corr-${c.name}`),
    replyTo: `${c.name}.replies`, messageId: `mid-${c.name}`, appId: 'matrix' };
  if (c.src === 'amqp') {
    const ch = await amqpChannel(t, true);
    const [x, k] = c.named ? ['', c.queue] : ['amq.topic', c.key];
    const headers = [...HEADERS, ['n', 42], ['flag', true], ['raw', Buffer.from('utf-8 bytes')]];
    ch.publish(x, k, BINARY, { ...rich, correlationId: rich.correlationId.toString(), persistent: true,
      headers: Object.fromEntries(headers) });
    ch.publish(x, k, EMPTY, { persistent: true });
    await within(ch.waitForConfirms(), 'publisher confirms');
    return [new Routed(x, k, BINARY, rich, headers), new Routed(x, k, EMPTY)];
  }
  if (c.src === 'mqtt5') {
    const pub = await mqttClient(t, `${c.name}-pub`);
    // Correlation Data is binary, but a STOMP header is text and amqplib
    // reads correlation_id as UTF-8.
    const corr = {
      stomp: rich.correlationId,
      amqp: Buffer.concat([Buffer.from([0]), rich.correlationId, Buffer.from([1])]),
      mqtt5: Buffer.concat([Buffer.from([0, 0xff]), rich.correlationId]),
    }[c.dst];
    const user = [...HEADERS, ['k', '1'], ['k', '2']]; // a repeated key
    const topic = swap(c.key);
    await mqttPublish(pub, topic, BINARY, { properties: {
      contentType: CONTENT_TYPE, correlationData: corr, responseTopic: `${c.name}/replies`,
      userProperties: userProps([...user, ['x-amqp-message-id', rich.messageId], ['x-amqp-app-id', 'matrix']]),
    } });
    await mqttPublish(pub, topic, EMPTY);
    const qos = [['x-mqtt-publish-qos', 1]];
    return [new Routed('amq.topic', c.key, BINARY, { ...rich, correlationId: corr }, [...user, ...qos]),
      new Routed('amq.topic', c.key, EMPTY, {}, qos)];
  }
  if (c.src === 'mqtt3') {
    const pub = await mqttClient(t, `${c.name}-pub`, 4);
    await mqttPublish(pub, swap(c.key), BINARY);
    await mqttPublish(pub, swap(c.key), EMPTY);
    const qos = [['x-mqtt-publish-qos', 1]];
    return [new Routed('amq.topic', c.key, BINARY, {}, qos), new Routed('amq.topic', c.key, EMPTY, {}, qos)];
  }
  const s = await stompClient(t, `${c.name}-pub`);
  const [x, k] = c.named ? ['', c.queue] : ['amq.topic', c.key];
  const dest = (c.named ? '/queue/' : '/topic/') + k;
  const props = { ...rich, replyTo: `/topic/${c.name}.replies` };
  if (!c.replyTo) delete props.replyTo;
  const headers = { 'content-type': CONTENT_TYPE, 'correlation-id': `corr-${c.name}`, 'message-id': props.messageId,
    'app-id': 'matrix', persistent: 'true', ...Object.fromEntries(HEADERS) };
  if (props.replyTo) headers['reply-to'] = props.replyTo;
  await stompSend(s, dest, BINARY, headers, 'rich');
  await stompSend(s, dest, EMPTY, { persistent: 'true' }, 'empty');
  return [new Routed(x, k, BINARY, props, HEADERS), new Routed(x, k, EMPTY)];
}

const view = { amqp: 'forAmqp', mqtt5: 'forMqtt5', mqtt3: 'forMqtt3', stomp: 'forStomp' };

async function runCell(t, c) {
  const recv = await attach(t, c);
  await glue(t, c);
  const sent = await publish(t, c);
  for (const [i, routed] of sent.entries()) {
    assert.deepStrictEqual(await recv(), routed[view[c.dst]](), `${c.name}: message ${i}`);
  }
}

// Broker bugs the matrix shows: the cell is skipped with the reason, and a
// variant of it without the property concerned runs.
const BUGS = {};

const cells = [];
for (const src of ['amqp', 'mqtt5', 'stomp']) {
  for (const dst of ['amqp', 'mqtt5', 'stomp']) {
    cells.push(cell(src, dst, 'topic'));
    if (dst !== 'mqtt5') cells.push(cell(src, dst, 'queue')); // MQTT subscribers consume through topics only
  }
}
cells.push(cell('amqp', 'mqtt3', 'topic'), cell('mqtt3', 'stomp', 'topic')); // 3.1.1: topic, payload, QoS only

for (const c of cells) {
  const title = `matrix ${c.src} -> ${c.dst} via ${c.route}`;
  const bug = BUGS[c.name];
  test(title, { skip: bug?.reason }, (t) => runCell(t, c));
  if (bug) test(`${title}, ${bug.variant}`, (t) => runCell(t, { ...c, ...bug.without }));
}

// Beside the matrix.

test('provenance of a STOMP send for an MQTT 5 subscriber', async (t) => {
  const sub = await mqttClient(t, 'prov-node-sub');
  await mqttSubscribe(sub, 'prov/node');
  const s = await stompClient(t, 'prov-node-pub');
  await stompSend(s, '/topic/prov.node', Buffer.from('who'), {}, 'prov');
  const m = await sub.box.next();
  const got = Object.fromEntries(Object.entries(m.properties.userProperties).filter(([k]) => k.startsWith('x-junction-')));
  assert.deepStrictEqual(got, { 'x-junction-protocol': 'stomp', 'x-junction-user': 'guest',
    'x-junction-client': 'prov-node-pub' });
});

test('request/reply: MQTT 5 requester, AMQP responder', async (t) => {
  const ch = await amqpChannel(t, true);
  const q = (await ch.assertQueue('', { exclusive: true })).queue;
  await ch.bindQueue(q, 'amq.topic', 'svc.requests.node');
  const requests = await amqpInbox(ch, q);
  const requester = await mqttClient(t, 'requester-node');
  await mqttSubscribe(requester, 'svc/replies/dev1');
  const corr = Buffer.from([0, ...Buffer.from('req-1'), 1]); // binary; UTF-8, as amqplib reads correlation_id
  await mqttPublish(requester, 'svc/requests/node', Buffer.from('question'),
    { properties: { responseTopic: 'svc/replies/dev1', correlationData: corr } });

  const req = await requests.next(); // the responder
  assert.deepStrictEqual([req.content.toString(), req.properties.replyTo, req.properties.correlationId],
    ['question', 'svc.replies.dev1', corr.toString()]);
  ch.publish('amq.topic', req.properties.replyTo, Buffer.from('answer'),
    { correlationId: req.properties.correlationId, persistent: true });
  await within(ch.waitForConfirms(), 'publisher confirm');

  const m = await requester.box.next();
  assert.deepStrictEqual([m.topic, m.payload.toString(), m.properties.correlationData],
    ['svc/replies/dev1', 'answer', corr]);
});

test('retained: AMQP publish with x-mqtt-retain reaches a later MQTT 5 subscriber as retained', async (t) => {
  const ch = await amqpChannel(t, true);
  ch.publish('amq.topic', 'retained.node.temp', BINARY,
    { persistent: true, contentType: 'application/octet-stream', headers: { 'x-mqtt-retain': true } });
  await within(ch.waitForConfirms(), 'publisher confirm');
  const sub = await mqttClient(t, 'retained-node-sub');
  defer(t, () => mqttPublish(sub, 'retained/node/temp', EMPTY, { retain: true })); // clears the topic
  await mqttSubscribe(sub, 'retained/+/temp');
  const m = await sub.box.next();
  assert.deepStrictEqual([m.topic, m.retain, m.payload, m.properties.contentType],
    ['retained/node/temp', true, BINARY, 'application/octet-stream']);
});
