// Harness check: the npm client libraries load and the broker binary runs.
// Protocol tests join this directory as <protocol>.test.mjs, each starting
// its own broker from $JUNCTION_BIN on loopback ports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import amqp from 'amqplib';
import mqtt from 'mqtt';
import { Client } from '@stomp/stompjs';

test('client libraries load', () => {
  assert.equal(typeof amqp.connect, 'function');
  assert.equal(typeof mqtt.connect, 'function');
  assert.equal(typeof Client, 'function');
});

test('broker --check', () => {
  const data = mkdtempSync(join(tmpdir(), 'junction-'));
  try {
    const r = spawnSync(process.env.JUNCTION_BIN, ['--check', '--data-dir', data], { encoding: 'utf8', env: {}, timeout: 60000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /configuration OK/);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});
