/**
 * Fail-closed paths on the real kernel (issue 11), with `sluice run` in the gateway namespace:
 * - NAT-held IKE at shutdown: a host's IKE_AUTH held behind another host's learning window must not
 *   leave untranslated (with its LAN source address) when sluice stops; it is dropped (the host
 *   retransmits). Seen before the fix on the WAN: `192.168.1.12.500 > 203.0.113.10.500`.
 *
 *     c1, c2 192.168.1.11-12 ─ br0 [gw: sluice nat] wan0 203.0.113.1 ─ 203.0.113.10 [sv]
 *
 * - Truncated packets: a queue with copy_range 128 and gso: true; a TCP bulk transfer and 1400-byte
 *   UDP datagrams cross it through a steer rule that marks them. The stages decide on the headers
 *   they see; nothing is rewritten, so every byte arrives (before: each packet longer than 128
 *   bytes was dropped as unreadable).
 *
 *     client 192.168.1.2 ─ lan0 [gw: sluice steer] wan0 ─ server 192.0.2.10
 *
 * - A state directory owned by another user (nobody, a real process) who planted a symlink at
 *   `nat.journal.tmp` pointing at a root-only file: sluice refuses to start; before, root's sluice
 *   truncated the file while compacting its journal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labSkipReason, sleep, until } from '../../src/lab/lab';
import { SluiceProcess, SLUICE_MAIN } from '../../src/lab/sluice';
import { UdpSink, sendUdp } from '../../src/lab/traffic';
import { applyNatRules, natSection, natTopo, natYaml, PY, SERVER } from './fixtures/nat-lab';
import { gatewayLab } from './gateway';
import { nfqueueTargetText, startSluiceWorkers } from '../kit/workers';

/** One IKEv2 IKE_AUTH request (cleartext header + filler) from UDP 500 to server:500. */
const IKE_AUTH = `
import os, socket, struct, sys
ispi = int.from_bytes(os.urandom(8), 'big') | 1
rspi = int.from_bytes(os.urandom(8), 'big') | 1
body = os.urandom(64)
hdr = struct.pack('!QQBBBBII', ispi, rspi, 35, 0x20, 35, 0x08, 1, 28 + len(body))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 500))
s.sendto(hdr + body, (sys.argv[1], 500))
`;

test('NAT-held IKE is dropped at shutdown, never sent untranslated with its LAN source', { skip: labSkipReason(), timeout: 60000 }, async (t) => {
  const tp = await natTopo('fcln', 2);
  t.after(() => tp.lab.cleanup());
  const nat = natSection(tp.lab);
  const yaml = natYaml(nat);
  await applyNatRules(tp.gw, nat, SluiceProcess.write(tp.lab, 'rules.yaml', yaml));
  const sl = await SluiceProcess.start(tp.lab, tp.gw, yaml);
  const wan = tp.sv.spawn(['tcpdump', '-ni', 'eth0', '--immediate-mode', '-l', 'udp port 500']);
  await wan.waitFor(/listening/);
  // c1 opens the learning window towards the server (no answer comes); c2's IKE_AUTH is held.
  await tp.clients[0]!.exec([PY, '-c', IKE_AUTH, SERVER]);
  await sleep(200);
  await tp.clients[1]!.exec([PY, '-c', IKE_AUTH, SERVER]);
  await until(async () => (await sl.counter('nat.held')) === 1, 5000, 'c2 held');
  await sl.stop();
  await sleep(500);
  await wan.stop();
  t.diagnostic(`WAN:\n${wan.output}`);
  assert.match(wan.output, /203\.0\.113\.1\.500 > 203\.0\.113\.10\.500/, 'c1 went out translated');
  assert.doesNotMatch(wan.output, /192\.168\.1\.\d+\.500 >/, 'no LAN source address on the WAN');
  assert.equal((wan.output.match(/ > 203\.0\.113\.10\.500/g) ?? []).length, 1, 'c2\'s held message was dropped, not sent');
});

test('truncated packets (copy_range 128, gso) are decided on their headers and delivered whole', { skip: labSkipReason(), timeout: 90000 }, async (t) => {
  const g = await gatewayLab('fctr');
  t.after(() => g.lab.cleanup());
  await g.gw.sh(`(ethtool -K lan0 gro on && ethtool -K wan0 gro on) 2>/dev/null || true
    iptables -t mangle -A FORWARD -p tcp --dport 9000 ${nfqueueTargetText(21)}
    iptables -t mangle -A FORWARD -p tcp --sport 9000 ${nfqueueTargetText(21)}
    iptables -t mangle -A FORWARD -p udp --dport 9001 ${nfqueueTargetText(21)}
    iptables -t mangle -A POSTROUTING -p udp --dport 9001 -m mark --mark 0x7/0xff`);
  const yaml = `queues:
  - num: 21
    copy_range: 128
    gso: true
    fail_open: false
steer:
  rules:
    - name: mark-bulk
      match: { proto: udp, dport: 9001 }
      action: { mark: "0x7/0xff", then: accept }
    - name: mark-tcp
      match: { proto: tcp }
      action: { mark: "0x5/0xff", then: accept }
`;
  const sl = await startSluiceWorkers(g.lab, g.gw, yaml);
  // TCP: 4 MB client → server, counted by the server.
  const rx = g.server.spawn([PY, '-c', `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('192.0.2.10', 9000)); s.listen(1)
print('listening', flush=True)
c, _ = s.accept(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    n += len(b)
print('got', n, flush=True)
`]);
  await rx.waitFor(/listening/);
  await g.client.exec([PY, '-c', `
import socket
s = socket.create_connection(('192.0.2.10', 9000), timeout=20)
s.sendall(b'x' * (4 << 20)); s.close()
`], { timeoutMs: 30000 });
  await rx.waitFor(/got \d+/, 20000);
  assert.match(rx.stdout, /got 4194304/, 'every TCP byte arrived');
  const sink = await UdpSink.start(g.server, 9001);
  await sendUdp(g.client, '192.0.2.10', 9001, 50, { size: 1400, pps: 500 });
  await sleep(300);
  const u = await sink.finish();
  assert.equal(u.received, 50, '1400-byte datagrams through a 128-byte queue');
  assert.ok(u.first.every((p) => p.length === 1400), 'delivered whole');
  const post = await g.gw.sh('iptables -t mangle -L POSTROUTING -vnx');
  t.diagnostic(post);
  const marked = Number(post.split('\n').find((l) => l.includes('dpt:9001'))?.trim().split(/\s+/)[0]);
  assert.equal(marked, 50, 'the steer stage decided them (mark 0x7 on all 50)');
  const st = await sl.stats();
  const get = (n: string) => st.counters.find((c) => c.name === n)?.value ?? 0;
  t.diagnostic(`engine: ${st.counters.filter((c) => c.name.startsWith('engine.') && c.value).map((c) => `${c.name}=${c.value}`).join(' ')}`);
  assert.equal(get('engine.invalid.truncated'), 0, 'no truncated packet dropped as unreadable');
  await sl.stop();
});

test('a state directory another user can write is refused: nobody\'s symlink at nat.journal.tmp does not make root truncate a file', { skip: labSkipReason(), timeout: 60000 }, async (t) => {
  const tp = await natTopo('fcsd', 1);
  t.after(() => tp.lab.cleanup());
  // A world-traversable place outside the lab's private directory, so the attacker can reach it.
  const base = mkdtempSync(join(tmpdir(), 'sluice-statedir-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  chmodSync(base, 0o755);
  const secret = join(base, 'root-only');
  writeFileSync(secret, 'root secret\n', { mode: 0o600 });
  const state = join(base, 'state');
  mkdirSync(state, { mode: 0o755 });
  chownSync(state, 65534, 65534); // the state directory belongs to nobody
  // The attacker: a real process running as nobody.
  await tp.gw.exec(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'ln', '-s', secret, join(state, 'nat.journal.tmp')]);
  const nat = { ...natSection(tp.lab), journal: { path: 'nat.journal' } };
  const yaml = `${natYaml(nat)}control:\n  socket: ${join(state, 'sluice.sock')}\n`;
  await applyNatRules(tp.gw, nat, SluiceProcess.write(tp.lab, 'rules.yaml', yaml));
  const file = SluiceProcess.write(tp.lab, 'sd.yaml', yaml);
  const r = await tp.gw.exec([process.execPath, SLUICE_MAIN, 'run', '-c', file], { allowFail: true, timeoutMs: 10000 });
  t.diagnostic(`sluice run: exit ${r.code}: ${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' | ')}`);
  assert.equal(readFileSync(secret, 'utf8'), 'root secret\n', 'the root-only file is intact');
  assert.notEqual(r.code, 0, 'sluice refuses to run');
  assert.match(r.stdout + r.stderr, /owned by uid 65534/, 'and says why');
});

test('SIGTERM ends open control connections: an idle client does not keep a stopping sluice alive', { skip: labSkipReason(), timeout: 60000 }, async (t) => {
  const g = await gatewayLab('fcct');
  t.after(() => g.lab.cleanup());
  const sl = await startSluiceWorkers(g.lab, g.gw, 'queues:\n  - num: 23\n');
  const idle = createConnection(sl.socket);
  await new Promise<void>((r, j) => { idle.once('connect', () => r()); idle.once('error', j); });
  const closed = new Promise<void>((r) => idle.once('close', () => r()));
  idle.on('error', () => {});
  const t0 = Date.now();
  const code = await sl.stop();
  const took = Date.now() - t0;
  await closed;
  t.diagnostic(`exit ${code} after ${took} ms`);
  assert.equal(code, 0, 'exited by itself on SIGTERM (not killed after the 5 s grace)');
  assert.ok(took < 3000, `stopped in ${took} ms`);
});
