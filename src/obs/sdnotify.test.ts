/**
 * sd_notify over a real AF_UNIX datagram socket (a Python receiver stands in for systemd: Node
 * cannot receive Unix datagrams): readiness, watchdog pings at WATCHDOG_USEC/2, reload and stop
 * messages, abstract socket names, and refused sends returned as errno, never thrown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SystemdNotifier } from './sdnotify';

const RECEIVER = `
import socket, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
name = sys.argv[1]
s.bind('\\0' + name[1:] if name.startswith('@') else name)
print('bound', flush=True)
s.settimeout(5)
while True:
    try:
        d = s.recv(4096)
    except socket.timeout:
        break
    print(json.dumps(d.decode()), flush=True)
    if b'STOPPING=1' in d:
        break
`;

/** Starts a receiver on name; resolves once bound, with a function that returns the datagrams once it exits. */
function receiver(name: string): Promise<() => Promise<string[]>> {
  const p = spawn('/usr/bin/python3', ['-c', RECEIVER, name], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const done = new Promise<string[]>((resolve) => p.on('exit', () => resolve(out.split('\n').slice(1).filter(Boolean).map((l) => JSON.parse(l) as string))));
  return new Promise((resolve, reject) => {
    p.on('error', reject);
    p.stdout!.on('data', (c: Buffer) => {
      const had = out.length;
      out += c.toString();
      if (had === 0 && out.startsWith('bound')) resolve(() => done);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const kind of ['path', 'abstract'] as const) {
  test(`ready, watchdog pings, reload and stop reach the socket (${kind} name)`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-notify-'));
    try {
      const name = kind === 'path' ? join(dir, 'notify') : `@sluice-test-${process.pid}-${Date.now()}`;
      const messages = await receiver(name);
      const n = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: name, WATCHDOG_USEC: '40000', WATCHDOG_PID: String(process.pid) });
      assert.ok(n);
      assert.equal(n.watchdogUsec, 40000);
      assert.equal(n.ready('running: queues 5'), true);
      await sleep(130); // pings every 20 ms
      assert.equal(n.reloading(), true);
      assert.equal(n.notify({ READY: 1 }), true);
      assert.equal(n.stopping(), true);
      const got = await messages();
      assert.equal(got[0], `READY=1\nSTATUS=running: queues 5\nMAINPID=${process.pid}\n`);
      const pings = got.filter((m) => m === 'WATCHDOG=1\n').length;
      assert.ok(pings >= 2 && pings <= 12, `${pings} pings in 130 ms at a 20 ms period`);
      assert.match(got.at(-3)!, /^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading\n$/);
      assert.equal(got.at(-2), 'READY=1\n');
      assert.equal(got.at(-1), 'STOPPING=1\nSTATUS=stopping\n');
      assert.equal(n.lastError, 0);
      const before = n.sent;
      await sleep(60);
      assert.equal(n.sent, before, 'no ping after STOPPING');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('outside systemd nothing is sent; a watchdog for another PID is not ours; failed sends are errno', () => {
  assert.equal(SystemdNotifier.fromEnv({}), null);
  assert.equal(SystemdNotifier.fromEnv({ NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' })!.watchdogUsec, 0);
  const gone = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: join(tmpdir(), `no-such-socket-${process.pid}`) })!;
  assert.equal(gone.ready('x'), false);
  assert.equal(gone.lastError, 2); // ENOENT
  const relative = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: 'relative/name' })!;
  assert.equal(relative.notify({ READY: 1 }), false);
  assert.equal(relative.lastError, 22); // EINVAL: the addon checks the name
  const long = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: `/${'x'.repeat(200)}` })!;
  assert.equal(long.notify({ READY: 1 }), false);
  assert.equal(long.lastError, 22);
});
