// amqplib against the junction binary over AMQP 0-9-1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import amqp from 'amqplib';

let broker, data, port;

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
  throw new Error('broker did not listen in time');
}

before(async () => {
  data = mkdtempSync(join(tmpdir(), 'junction-amqp-'));
  port = await freePort();
  broker = spawn(process.env.JUNCTION_BIN, ['--data-dir', data, '--amqp-listen', `127.0.0.1:${port}`,
    '--mqtt-listen=', '--stomp-listen='], { stdio: ['ignore', 'ignore', 'inherit'], env: {} });
  await waitListening(port, 20000);
});

after(async () => {
  const exited = new Promise((resolve) => broker.once('exit', resolve));
  broker.kill('SIGTERM');
  await exited;
  rmSync(data, { recursive: true, force: true });
});

test('confirm channel publish and consume with properties', async () => {
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${port}`);
  const ch = await conn.createConfirmChannel();
  await ch.assertExchange('jobs', 'direct', { durable: true });
  const q = await ch.assertQueue('', { exclusive: true });
  await ch.bindQueue(q.queue, 'jobs', 'run');
  for (let i = 0; i < 20; i++) {
    ch.publish('jobs', 'run', Buffer.from(`job-${i}`), {
      persistent: true, contentType: 'text/plain', messageId: `id-${i}`, headers: { attempt: i, list: [1, 'x'] },
    });
  }
  await ch.waitForConfirms();
  const got = [];
  await new Promise((resolve, reject) => {
    ch.consume(q.queue, (msg) => {
      try {
        const i = got.length;
        assert.equal(msg.content.toString(), `job-${i}`);
        assert.equal(msg.properties.messageId, `id-${i}`);
        assert.equal(msg.properties.contentType, 'text/plain');
        assert.equal(msg.properties.headers.attempt, i);
        assert.deepEqual(msg.properties.headers.list, [1, 'x']);
        ch.ack(msg);
        got.push(i);
        if (got.length === 20) resolve();
      } catch (e) { reject(e); }
    });
  });
  await conn.close();
});

test('passive declare of a missing queue closes only the channel with 404', async () => {
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${port}`);
  conn.on('error', () => {});
  const ch = await conn.createChannel();
  ch.on('error', () => {});
  await assert.rejects(ch.checkQueue('missing'), /404/);
  const ch2 = await conn.createChannel(); // the connection survives
  await ch2.assertQueue('', { exclusive: true });
  await conn.close();
});

test('wrong password is refused', async () => {
  await assert.rejects(amqp.connect(`amqp://guest:wrong@127.0.0.1:${port}`), /ACCESS_REFUSED|403/);
});
