import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlError, controlRequest, controlStream } from './client';
import { startControlServer } from './server';

const isRoot = process.geteuid?.() === 0;
const NOBODY = 65534;

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
    await server.close();
  }
});

test('the socket is owner-only and its directory too', async () => {
  const path = join(dir(), 'ctl', 's.sock');
  const server = await startControlServer(path, () => 1);
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(path, '..')).mode & 0o777, 0o700);
  } finally {
    await server.close();
  }
});

test('a stale socket is replaced; a live one is refused', async () => {
  const path = join(dir(), 's.sock');
  // A socket file nobody listens on, as a killed sluice leaves it.
  execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
  assert.ok(statSync(path).isSocket());
  const server = await startControlServer(path, () => 'first');
  try {
    await assert.rejects(startControlServer(path, () => 'second'), /another sluice is already listening/);
    assert.equal(await controlRequest(path, { cmd: 'x' }), 'first');
  } finally {
    await server.close();
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
    await server.close();
  }
});

test('anything at the socket path that is not a socket is refused and left alone (a config, a symlink)', async () => {
  const d = dir();
  const config = join(d, 'sluice.yaml');
  writeFileSync(config, 'queues: []\n');
  await assert.rejects(startControlServer(config, () => 1), /exists and is not a socket \(a file\)/);
  assert.equal(readFileSync(config, 'utf8'), 'queues: []\n', 'the config is still there');
  const link = join(d, 'link.sock');
  symlinkSync(config, link);
  await assert.rejects(startControlServer(link, () => 1), /not a socket \(a symlink\)/);
  assert.ok(existsSync(config));
});

test('a socket path longer than a sockaddr_un holds is an error, not a truncated bind', async () => {
  const long = join(dir(), 'x'.repeat(120), 's.sock');
  await assert.rejects(startControlServer(long, () => 1), /holds at most 107/);
});

test('answers come in request order (a slow first request does not let the second overtake it)', async () => {
  const path = join(dir(), 's.sock');
  const server = await startControlServer(path, async (req) => {
    if (req.cmd === 'slow') await new Promise((r) => setTimeout(r, 80));
    return req.cmd;
  });
  try {
    const lines = await new Promise<string[]>((resolve) => {
      const c = createConnection(path);
      let out = '';
      c.setEncoding('utf8');
      c.on('data', (d: string) => { out += d; const l = out.trim().split('\n'); if (l.length === 3) { c.destroy(); resolve(l); } });
      c.write('{"cmd":"slow"}\n{"cmd":"fast"}\n{"cmd":"third"}\n');
    });
    assert.deepEqual(lines.map((l) => (JSON.parse(l) as { result: string }).result), ['slow', 'fast', 'third']);
  } finally {
    await server.close();
  }
});

test('backpressure: a client that pipelines 1 MiB of requests and never reads does not make the server answer them all', async () => {
  const path = join(dir(), 's.sock');
  let handled = 0;
  const big = 'y'.repeat(4000);
  const server = await startControlServer(path, () => { handled++; return big; });
  const c = createConnection(path);
  try {
    await new Promise<void>((r) => c.once('connect', () => r()));
    c.pause(); // never reads
    const line = '{"cmd":"stats"}\n';
    const n = Math.floor((1 << 20) / line.length);
    c.write(line.repeat(n));
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(handled < n / 10, `answered ${handled} of ${n} requests nobody reads (each answer 4 KB): bounded by the socket buffers`);
  } finally {
    c.destroy();
    await server.close();
  }
});

test('idle connections are closed; connections are capped; close() ends open ones at once', async () => {
  const path = join(dir(), 's.sock');
  const server = await startControlServer(path, () => 'ok', { idleMs: 150, maxConnections: 2 });
  const open = (): Promise<{ sock: Socket; closed: Promise<string> }> => new Promise((resolve) => {
    const sock = createConnection(path);
    let out = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => { out += d; });
    const closed = new Promise<string>((r) => sock.once('close', () => r(out)));
    sock.once('connect', () => resolve({ sock, closed }));
  });
  const idle = await open();
  const t0 = Date.now();
  assert.equal(await idle.closed, '');
  assert.ok(Date.now() - t0 < 2000, 'the idle one was closed after idleMs');
  const a = await open();
  const b = await open();
  const third = await open();
  assert.match(await third.closed, /too many control connections \(2\)/);
  const t1 = Date.now();
  await server.close();
  await Promise.all([a.closed, b.closed]);
  assert.ok(Date.now() - t1 < 100, 'close() did not wait for idle clients');
});

test('the socket directory must be ours and not writable by group or others', { skip: isRoot ? false : 'needs root (chown to nobody); CI runs as root' }, async () => {
  const d = dir();
  const shared = join(d, 'shared');
  mkdirSync(shared, { mode: 0o700 });
  chmodSync(shared, 0o777);
  await assert.rejects(startControlServer(join(shared, 's.sock'), () => 1), /writable by others/);
  const theirs = join(d, 'theirs');
  mkdirSync(theirs, { mode: 0o700 });
  chownSync(theirs, NOBODY, NOBODY);
  await assert.rejects(startControlServer(join(theirs, 's.sock'), () => 1), /owned by uid 65534/);
});

test('the CLI does not trust a socket another user owns', { skip: isRoot ? false : 'needs root (chown to nobody); CI runs as root' }, async () => {
  const d = dir();
  const path = join(d, 's.sock');
  const server = await startControlServer(path, () => 'from an impostor');
  try {
    chownSync(path, NOBODY, NOBODY);
    await assert.rejects(controlRequest(path, { cmd: 'reload' }), /belongs to uid 65534.*not trusting its answers/);
    await assert.rejects(controlStream(path, { cmd: 'trace' }, () => {}), /belongs to uid 65534.*not trusting its answers/, 'streams (trace, tap, sa --events) check too');
    chownSync(path, 0, 0);
    assert.equal(await controlRequest(path, { cmd: 'reload' }), 'from an impostor', 'root-owned: trusted');
  } finally {
    await server.close();
  }
});

test('the CLI trusts a service user\'s socket only in a directory root gave that user (RuntimeDirectory=)', { skip: isRoot ? false : 'needs root (chown to nobody); CI runs as root' }, async () => {
  const d = dir(); // root's, 0700, in sticky /tmp
  const svc = join(d, 'svc');
  mkdirSync(svc, { mode: 0o700 });
  const path = join(svc, 's.sock');
  const server = await startControlServer(path, () => 'from the service');
  // In /tmp itself (world-writable, sticky): anyone could have made that directory.
  const loose = mkdtempSync(join(tmpdir(), 'sluice-loose-'));
  const loosePath = join(loose, 's.sock');
  const looseServer = await startControlServer(loosePath, () => 'from anyone');
  try {
    chownSync(svc, NOBODY, NOBODY);
    chownSync(path, NOBODY, NOBODY);
    assert.equal(await controlRequest(path, { cmd: 'stats' }), 'from the service', 'a private directory under root-only parents: trusted');
    chmodSync(d, 0o777);
    await assert.rejects(controlRequest(path, { cmd: 'stats' }), /belongs to uid 65534/, 'parent writable by others');
    chmodSync(d, 0o700);
    chmodSync(svc, 0o770);
    await assert.rejects(controlRequest(path, { cmd: 'stats' }), /belongs to uid 65534/, 'socket directory writable by its group');
    chmodSync(svc, 0o700);
    chownSync(loose, NOBODY, NOBODY);
    chownSync(loosePath, NOBODY, NOBODY);
    await assert.rejects(controlRequest(loosePath, { cmd: 'stats' }), /belongs to uid 65534/, 'a directory anyone could make in /tmp');
  } finally {
    await server.close();
    await looseServer.close();
  }
});

test('close(reason) tells a request under way why (a plain answer and a stream), marked stopping; an idle connection is just closed', async () => {
  const path = join(dir(), 's.sock');
  let started!: () => void;
  const streaming = new Promise<void>((r) => { started = r; });
  const server = await startControlServer(path, (req) => {
    if (req.cmd === 'reload') return new Promise(() => {}); // answers only when sluice stops
    return (async function* () { yield 'first'; started(); await new Promise(() => {}); })();
  });
  const idle = createConnection(path);
  const idleClosed = new Promise<void>((r) => idle.once('close', () => r()));
  const chunks: unknown[] = [];
  const reload = controlRequest(path, { cmd: 'reload' }, 30000);
  const trace = controlStream(path, { cmd: 'trace' }, (c) => chunks.push(c), 30000);
  await streaming;
  await new Promise((r) => setTimeout(r, 50)); // the reload request is read and under way
  const stopped = (e: unknown) => e instanceof ControlError && e.stopping && /^sluice is stopping: worker 1 died \(Error: boom\)$/.test(e.message);
  const told = Promise.all([assert.rejects(reload, stopped), assert.rejects(trace, stopped)]);
  const t0 = Date.now();
  await server.close('sluice is stopping: worker 1 died (Error: boom)');
  await told;
  assert.deepEqual(chunks, ['first'], 'the stream\'s chunks before the stop arrived');
  await idleClosed;
  assert.ok(Date.now() - t0 < 500, `the clients were told at once (${Date.now() - t0} ms)`);
});

test('a connection closed before its answer fails the request at once, as stopping (not after the timeout)', async () => {
  const path = join(dir(), 's.sock');
  let server!: Awaited<ReturnType<typeof startControlServer>>;
  server = await startControlServer(path, () => { void server.close(); return new Promise(() => {}); });
  const t0 = Date.now();
  await assert.rejects(controlRequest(path, { cmd: 'reload' }, 30000),
    (e: unknown) => e instanceof ControlError && e.stopping && /closed the connection before answering/.test(e.message));
  assert.ok(Date.now() - t0 < 1000, `failed after ${Date.now() - t0} ms`);
});
