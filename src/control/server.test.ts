import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlRequest } from './client';
import { startControlServer } from './server';

const dir = () => mkdtempSync(join(tmpdir(), 'sluice-ctl-'));

test('answers JSON-line requests; errors come back as messages', async () => {
  const path = join(dir(), 'ctl', 's.sock');
  const server = await startControlServer(path, (req) => {
    if (req.cmd === 'boom') throw new Error('it broke');
    return { echo: req.cmd, args: req.args ?? null };
  });
  try {
    assert.deepEqual(await controlRequest(path, { cmd: 'stats', args: { all: true } }), { echo: 'stats', args: { all: true } });
    await assert.rejects(controlRequest(path, { cmd: 'boom' }), /it broke/);
  } finally {
    server.close();
  }
});

test('the socket is owner-only and its directory too', async () => {
  const path = join(dir(), 'ctl', 's.sock');
  const server = await startControlServer(path, () => 1);
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(path, '..')).mode & 0o777, 0o700);
  } finally {
    server.close();
  }
});

test('a stale socket file is replaced; a live one is refused', async () => {
  const path = join(dir(), 's.sock');
  writeFileSync(path, '');
  const server = await startControlServer(path, () => 'first');
  try {
    await assert.rejects(startControlServer(path, () => 'second'), /another sluice is already listening/);
    assert.equal(await controlRequest(path, { cmd: 'x' }), 'first');
  } finally {
    server.close();
  }
});

test('garbage and oversized requests get an error, not a crash', async () => {
  const path = join(dir(), 's.sock');
  const server = await startControlServer(path, () => 'ok');
  const send = (text: string) => new Promise<string>((resolve) => {
    const c = createConnection(path);
    let out = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => { out += d; if (out.includes('\n')) { c.destroy(); resolve(out); } });
    c.on('error', () => resolve(out));
    c.on('close', () => resolve(out));
    c.write(text);
  });
  try {
    assert.match(await send('not json\n'), /"ok":false,"error":"bad request/);
    assert.match(await send('{"nocmd":1}\n'), /missing \\"cmd\\"/);
    assert.match(await send('x'.repeat(1.5 * 1024 * 1024)), /request too large/);
    assert.equal(await controlRequest(path, { cmd: 'still' }), 'ok');
  } finally {
    server.close();
  }
});
