/** The learning state machine, driven by synthetic packet sequences (no root, fake services). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NatStage } from './stage';
import { Verdict } from '../engine/stage';
import { SaKind } from './table';
import {
  out, inb, esp, espInUdp, ike, keepalive, drainReleased, dstOf, srcOf, ipv4Checksum, udpChecksumOk,
  IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL,
} from '../../test/kit/nat';
import { PUB, S, hosts, mk, ispiOf, rspiOf, initSa, many, manyInit } from '../../test/kit/nat-stage';

test('outbound IKE: source → public, ports kept, checksums right; response routed back', () => {
  const { st, fs } = mk();
  const o = out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), exchange: IKE_SA_INIT }));
  assert.equal(o.verdict, Verdict.ACCEPT);
  assert.ok(o.rewritten);
  assert.equal(srcOf(o.bytes), PUB);
  assert.equal((o.bytes[20] << 8) | o.bytes[21], 500, 'source port 500 untouched');
  assert.equal(ipv4Checksum(o.bytes), 0, 'IPv4 header checksum verifies');
  assert.ok(udpChecksumOk(o.bytes), 'UDP checksum verifies after incremental update');
  const r = inb(st, fs, ike(S, PUB, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_SA_INIT, flags: 0x20, port: 4500 }));
  assert.equal(dstOf(r.bytes), hosts[0]);
  assert.equal(ipv4Checksum(r.bytes), 0);
  assert.ok(udpChecksumOk(r.bytes));
  const sa = st.state.sas;
  const id = sa.find(3, 0, S, 0x11110000, 0);
  assert.equal(sa.rh[id], 0x22220000, 'responder SPI learned from the response');
});

test('zero UDP checksum stays zero; ESP-in-UDP checksum updated', () => {
  const { st, fs } = mk();
  const o = out(st, fs, espInUdp(hosts[0], S, 0xabc, 1, true));
  assert.equal(o.bytes[26] | o.bytes[27], 0);
  assert.equal(ipv4Checksum(o.bytes), 0);
  const o2 = out(st, fs, espInUdp(hosts[0], S, 0xabc, 2, false));
  assert.ok(udpChecksumOk(o2.bytes));
});

test('keepalives: outbound pass rewritten, inbound counted and dropped', () => {
  const { st, fs } = mk();
  const o = out(st, fs, keepalive(hosts[0], S));
  assert.equal(o.verdict, Verdict.ACCEPT);
  assert.equal(srcOf(o.bytes), PUB);
  const i = inb(st, fs, keepalive(S, PUB));
  assert.equal(i.verdict, Verdict.DROP);
  assert.equal(i.reason, 'nat.keepalive_in');
});

test('unknown inbound SPI outside any window: dropped, counted, no state', () => {
  const { st, fs } = mk();
  initSa(st, fs, 0);
  const before = st.state.sas.count;
  for (let k = 0; k < 1000; k++) {
    const r = inb(st, fs, esp(S, PUB, 0x5000 + k));
    assert.equal(r.verdict, Verdict.DROP);
    assert.equal(r.reason, 'nat.unknown_spi');
  }
  assert.equal(st.state.sas.count, before);
  const r = inb(st, fs, ike(S, PUB, { ispi: 0x99n, rspi: 0x98n, exchange: INFORMATIONAL }));
  assert.equal(r.reason, 'nat.unknown_ike');
});

test('concurrent negotiations of 4 hosts with traffic right away are serialized by windows, none misrouted', () => {
  const { st, fs } = mk();
  for (let i = 0; i < 4; i++) initSa(st, fs, i);
  // All four send IKE_AUTH at the same instant.
  const res = hosts.map((_, i) => out(st, fs, ike(hosts[i], S, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_AUTH, msgId: 1 })));
  assert.equal(res[0].verdict, Verdict.ACCEPT);
  for (let i = 1; i < 4; i++) assert.equal(res[i].verdict, Verdict.HOLD);
  const spiIn = (i: number): number => 0xc0000000 + i;
  const L = st.state.learning;
  let windowHost = 0;
  const learned = new Set<number>();
  for (let round = 0; round < 4; round++) {
    // The server answers the window host's IKE_AUTH, then its first ESP on the new SA arrives.
    const a = inb(st, fs, ike(S, PUB, { ispi: ispiOf(windowHost), rspi: rspiOf(windowHost), exchange: IKE_AUTH, flags: 0x20, msgId: 1 }));
    assert.equal(dstOf(a.bytes), hosts[windowHost]);
    const e = inb(st, fs, esp(S, PUB, spiIn(windowHost)));
    assert.equal(e.verdict, Verdict.ACCEPT);
    assert.equal(dstOf(e.bytes), hosts[windowHost], `SPI of host ${windowHost} routed to it`);
    learned.add(windowHost);
    const rel = drainReleased(st, fs);
    const passed = rel.filter((r) => r.verdict === Verdict.ACCEPT);
    if (round < 3) {
      assert.equal(passed.length, 1, 'exactly one released message opens the next window');
      const p = L.peer(S, 0);
      windowHost = hosts.indexOf(L.linkHost[L.turnLink[p]]);
      assert.ok(windowHost >= 0 && !learned.has(windowHost));
    }
  }
  assert.equal(learned.size, 4);
  // Every SPI still goes to its own host, in any order.
  for (const i of [3, 1, 0, 2]) assert.equal(dstOf(inb(st, fs, esp(S, PUB, spiIn(i), 9)).bytes), hosts[i]);
  assert.equal(fs.counts.get('nat.window_learned'), 4);
});

/** The LAN host whose outbound packet this was (the stage rewrote its source): its outbound ESP SA's host. */
let lastStage: NatStage | null = null;
function srcOfHost(r: { bytes: Uint8Array }): number {
  const spi = new DataView(r.bytes.buffer, r.bytes.byteOffset).getUint32(20);
  const sas = lastStage!.state.sas;
  return sas.host[sas.find(SaKind.ESP_OUT, 0, S, spi, 0)];
}


test('8 hosts connect at once and stay silent: no IKE waits more than one window; first packets are serialized probes, 0 misrouted', () => {
  const { st, fs } = mk();
  lastStage = st;
  for (let i = 0; i < 8; i++) manyInit(st, fs, i);
  const auth = many.map((h, i) => out(st, fs, ike(h, S, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_AUTH, msgId: 1 })));
  assert.equal(auth[0].verdict, Verdict.ACCEPT);
  assert.ok(auth.slice(1).every((r) => r.verdict === Verdict.HOLD), 'the others wait for host 0\'s window');
  inb(st, fs, ike(S, PUB, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, flags: 0x20, msgId: 1 }));
  // Host 0 is idle: its window ends window_settle_ms after the response, not at window_max_ms.
  fs.time += 160; st.tick(fs.time);
  const rel = drainReleased(st, fs);
  assert.equal(rel.length, 7);
  assert.ok(rel.every((r) => r.verdict === Verdict.ACCEPT), 'once a host is owed an idle SA, later exchanges pass at once');
  for (let i = 1; i < 8; i++) inb(st, fs, ike(S, PUB, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_AUTH, flags: 0x20, msgId: 1 }));
  assert.equal(fs.counts.get('nat.window_skipped'), 7);
  fs.time += 10_000; st.tick(fs.time);
  // All 8 send their first packet at the same instant (reverse order).
  const first = [...many.keys()].reverse().map((i) => [i, out(st, fs, esp(many[i], S, 0x1000 + i))] as const);
  assert.equal(first[0][1].verdict, Verdict.ACCEPT, 'host 7 probes');
  assert.ok(first.slice(1).every(([, r]) => r.verdict === Verdict.HOLD), 'the others wait one round trip');
  const order: number[] = [];
  let prober = 7;
  for (let k = 0; k < 8; k++) {
    order.push(prober);
    fs.time += 2;
    const reply = inb(st, fs, esp(S, PUB, 0x2000 + prober));
    assert.equal(reply.verdict, Verdict.ACCEPT);
    assert.equal(dstOf(reply.bytes), many[prober], `reply to host ${prober}'s probe`);
    const next = drainReleased(st, fs).filter((r) => r.verdict === Verdict.ACCEPT);
    if (k < 7) {
      assert.equal(next.length, 1, 'one released first packet takes the next probe');
      // The next prober; the last host needs no probe: it is the only one still owed.
      const L = st.state.learning;
      const p = L.peer(S, 0);
      prober = many.indexOf(L.turn[p] === 0 ? srcOfHost(next[0]) : L.linkHost[L.turnLink[p]]);
    }
  }
  assert.deepEqual([...order].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
  for (let i = 0; i < 8; i++) assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0x2000 + i, 7)).bytes), many[i]);
  assert.equal(fs.counts.get('nat.learned_reply'), 7);
  assert.equal(fs.counts.get('nat.learned_elimination'), 1, 'the last host was the only one owed');
  const list = st.command('sa-list', {}) as { esp_in: { learned: string; paired: boolean }[] }[];
  assert.equal(list.filter((g) => g.esp_in[0].learned === 'reply').length, 7);
  assert.ok(list.every((g) => g.esp_in.every((r) => r.paired)), 'both directions of every SA paired');
});

test('the server pushes first on one of two idle hosts\' new SAs: held, then resolved by elimination after the other host\'s probe', () => {
  const { st, fs } = mk();
  for (let i = 0; i < 2; i++) manyInit(st, fs, i);
  for (let i = 0; i < 2; i++) {
    out(st, fs, ike(many[i], S, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_AUTH, msgId: 1 }));
    inb(st, fs, ike(S, PUB, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_AUTH, flags: 0x20, msgId: 1 }));
    fs.time += 200; st.tick(fs.time); drainReleased(st, fs);
  }
  fs.time += 5000; st.tick(fs.time);
  // The server pushes on host 1's SA: both hosts are owed one, so nobody gets it yet.
  const push = inb(st, fs, esp(S, PUB, 0x2001));
  assert.equal(push.verdict, Verdict.HOLD);
  assert.equal(st.state.sas.find(SaKind.ESP_IN, 0, S, 0x2001, 0), -1);
  fs.time += 50;
  assert.equal(inb(st, fs, esp(S, PUB, 0x2001, 2)).verdict, Verdict.HOLD, 'still ambiguous');
  // Host 0 speaks: its probe's reply arrives on a new SPI; host 1 is then the only one owed.
  fs.time += 1000;
  assert.equal(out(st, fs, esp(many[0], S, 0x1000)).verdict, Verdict.ACCEPT);
  assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0x2000)).bytes), many[0]);
  const rel = drainReleased(st, fs);
  assert.equal(rel.length, 2, 'both held pushes released');
  for (const r of rel) assert.equal(dstOf(r.bytes), many[1], 'pushes delivered to host 1, by elimination');
  assert.equal(fs.counts.get('nat.learned_reply'), 1);
  assert.equal(fs.counts.get('nat.learned_elimination'), 1);
  assert.equal(fs.counts.get('nat.pending_resolved'), 1);
});

test('a push on an ambiguous SPI that went quiet is claimed by its host\'s probe; a busy one is not', () => {
  const { st, fs } = mk();
  for (let i = 0; i < 3; i++) manyInit(st, fs, i);
  for (let i = 0; i < 3; i++) {
    out(st, fs, ike(many[i], S, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_AUTH, msgId: 1 }));
    fs.time += 1100; st.tick(fs.time); drainReleased(st, fs);
  }
  assert.equal(inb(st, fs, esp(S, PUB, 0x2001)).verdict, Verdict.HOLD);
  fs.time += 1000; st.tick(fs.time);
  // Host 1's first packet; the server's reply comes on the SPI it pushed a second ago: host 1's.
  out(st, fs, esp(many[1], S, 0x1001));
  fs.time += 3;
  const r = inb(st, fs, esp(S, PUB, 0x2001, 2));
  assert.equal(dstOf(r.bytes), many[1]);
  assert.deepEqual(drainReleased(st, fs).map((x) => dstOf(x.bytes)), [many[1]], 'the held push follows');
  // Now host 0 and host 2 are owed. A push on host 2's SPI keeps coming while host 0 probes: not host 0's.
  fs.time += 1000; st.tick(fs.time);
  inb(st, fs, esp(S, PUB, 0x2002, 1));
  out(st, fs, esp(many[0], S, 0x1000));
  fs.time += 1;
  assert.equal(inb(st, fs, esp(S, PUB, 0x2002, 2)).verdict, Verdict.HOLD, 'a busy ambiguous SPI is no reply');
  fs.time += 1;
  assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0x2000)).bytes), many[0], 'the new SPI is the reply');
  const rel = drainReleased(st, fs);
  assert.ok(rel.length >= 2 && rel.every((x) => dstOf(x.bytes) === many[2]), 'host 2 by elimination');
});

test('one-way traffic: a paired inbound SA lives while its outbound direction talks, past esp_idle_s', () => {
  const { st, fs } = mk({ timeouts: { esp_idle_s: 10 } });
  manyInit(st, fs, 0);
  out(st, fs, ike(many[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  out(st, fs, esp(many[0], S, 0x1000));
  assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0x2000)).bytes), many[0]);
  for (let k = 0; k < 30; k++) { fs.time += 1000; out(st, fs, esp(many[0], S, 0x1000, k + 2)); st.tick(fs.time); }
  const r = inb(st, fs, esp(S, PUB, 0x2000, 2));
  assert.equal(r.verdict, Verdict.ACCEPT, r.reason);
  assert.equal(dstOf(r.bytes), many[0]);
  // Both directions quiet: both idle out.
  fs.time += 12_000; st.tick(fs.time); fs.time += 1000; st.tick(fs.time);
  assert.equal(st.state.sas.find(SaKind.ESP_IN, 0, S, 0x2000, 0), -1);
});

test('three child SAs in one burst (IKE_AUTH + 2 CREATE_CHILD_SA): all three inbound SPIs learned', () => {
  const { st, fs } = mk();
  for (let i = 0; i < 2; i++) manyInit(st, fs, i);
  out(st, fs, ike(many[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  inb(st, fs, ike(S, PUB, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, flags: 0x20, msgId: 1 }));
  for (const m of [2, 3]) {
    out(st, fs, ike(many[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, msgId: m }));
    out(st, fs, ike(many[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, msgId: m })); // retransmission
    inb(st, fs, ike(S, PUB, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, flags: 0x20, msgId: m }));
  }
  assert.equal(st.state.learning.owed(S, many[0], 0), 3, 'one owed SA per exchange, retransmissions not counted');
  for (const spi of [0x2100, 0x2101, 0x2102]) assert.equal(dstOf(inb(st, fs, esp(S, PUB, spi)).bytes), many[0]);
  assert.equal(st.state.learning.owed(S, many[0], 0), 0);
  assert.equal(inb(st, fs, esp(S, PUB, 0x2103)).reason, 'nat.unknown_spi', 'a fourth is owed to nobody');
});

test('a failed or childless IKE_AUTH delays another host by at most one window; that host still learns by its probe', () => {
  const { st, fs } = mk();
  for (let i = 0; i < 2; i++) manyInit(st, fs, i);
  out(st, fs, ike(many[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  assert.equal(out(st, fs, ike(many[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_AUTH, msgId: 1 })).verdict, Verdict.HOLD);
  // The server answers AUTHENTICATION_FAILED (encrypted: sluice sees only a response).
  inb(st, fs, ike(S, PUB, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, flags: 0x20, msgId: 1 }));
  fs.time += 160; st.tick(fs.time);
  const rel = drainReleased(st, fs);
  assert.equal(rel.length, 1);
  assert.equal(rel[0].verdict, Verdict.ACCEPT, 'host 1 waited 160 ms');
  // Even with no response at all, the wait ends at window_max_ms.
  const { st: st2, fs: fs2 } = mk();
  for (let i = 0; i < 2; i++) manyInit(st2, fs2, i);
  out(st2, fs2, ike(many[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  out(st2, fs2, ike(many[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_AUTH, msgId: 1 }));
  fs2.time += 1000; st2.tick(fs2.time);
  assert.equal(drainReleased(st2, fs2)[0].verdict, Verdict.ACCEPT);
  // Host 1 then learns through its first packet, although host 0 stays owed.
  inb(st, fs, ike(S, PUB, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_AUTH, flags: 0x20, msgId: 1 }));
  assert.equal(out(st, fs, esp(many[1], S, 0x1001)).verdict, Verdict.ACCEPT);
  assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0x2001)).bytes), many[1]);
  assert.equal(st.state.learning.owed(S, many[0], 0), 1, 'host 0 stays owed until its IKE SA idles out');
  fs.time += 3_600_001; st.tick(fs.time);
  assert.equal(st.state.learning.owed(S, many[0], 0), 0);
});

test('an idle owed host does not stop a busy host\'s server-initiated rekey from being learned in its window', () => {
  const { st, fs } = mk();
  for (let i = 0; i < 2; i++) manyInit(st, fs, i);
  // Host 0 connects and stays idle (owed one SA); host 1 connects and talks.
  out(st, fs, ike(many[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  fs.time += 1100; st.tick(fs.time);
  out(st, fs, ike(many[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_AUTH, msgId: 1 }));
  out(st, fs, esp(many[1], S, 0x1001));
  assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0x2001)).bytes), many[1], 'host 1 by its probe');
  // The server rekeys host 1's CHILD_SA and switches to the new SA at once; host 1 still sends on the old one.
  inb(st, fs, ike(S, PUB, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: CREATE_CHILD_SA, flags: 0x00, msgId: 0 }));
  out(st, fs, ike(many[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: CREATE_CHILD_SA, flags: 0x28, msgId: 0 }));
  fs.time += 2;
  const r = inb(st, fs, esp(S, PUB, 0x3001));
  assert.equal(r.verdict, Verdict.ACCEPT, r.reason);
  assert.equal(dstOf(r.bytes), many[1], 'the first new SPI right after the exchange: host 1\'s');
  assert.equal(st.state.learning.owed(S, many[0], 0), 1, 'host 0 still owed');
  // A push on host 0's SA long after the window: ambiguous no more (host 0 is the only one owed).
  fs.time += 5000; st.tick(fs.time);
  assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0x2000)).bytes), many[0]);
});

test('server-initiated rekey opens a window; another host waits; old and new SAs side by side', () => {
  const { st, fs } = mk();
  initSa(st, fs, 0); initSa(st, fs, 1);
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  inb(st, fs, esp(S, PUB, 0xa0));
  // Server rekeys host 0's CHILD_SA (request from the server).
  const req = inb(st, fs, ike(S, PUB, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, flags: 0x00, msgId: 0 }));
  assert.equal(dstOf(req.bytes), hosts[0]);
  const held = out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_AUTH, msgId: 1 }));
  assert.equal(held.verdict, Verdict.HOLD);
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, flags: 0x28, msgId: 0 }));
  assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0xa1)).bytes), hosts[0], 'new SPI learned for host 0');
  assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0xa0, 5)).bytes), hosts[0], 'old SA still routed');
  const rel = drainReleased(st, fs);
  assert.equal(rel.length, 1);
  assert.equal(rel[0].verdict, Verdict.ACCEPT);
  assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0xb0)).bytes), hosts[1]);
});

test('IKE SA rekey: unknown inbound IKE SPIs go to the only host owed an SA', () => {
  const { st, fs } = mk();
  initSa(st, fs, 0);
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, msgId: 3 }));
  const r = inb(st, fs, ike(S, PUB, { ispi: 0x7777n, rspi: 0x8888n, exchange: INFORMATIONAL, flags: 0x00 }));
  assert.equal(r.verdict, Verdict.ACCEPT);
  assert.equal(dstOf(r.bytes), hosts[0]);
  // An IKE_SA_INIT request from a server (no responder SPI) is never learned.
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, msgId: 4 }));
  assert.equal(inb(st, fs, ike(S, PUB, { ispi: 0x5555n, exchange: IKE_SA_INIT, flags: 0x08 })).reason, 'nat.unknown_ike');
});

test('static forward takes a server-initiated IKE_SA_INIT', () => {
  const { st, fs } = mk({ static_forwards: [{ server: '198.51.100.10', host: '10.0.0.14' }] });
  const r = inb(st, fs, ike(S, PUB, { ispi: 0x4242n, exchange: IKE_SA_INIT, flags: 0x08 }));
  assert.equal(dstOf(r.bytes), hosts[3]);
  const o = out(st, fs, ike(hosts[3], S, { ispi: 0x4242n, rspi: 0x99n, exchange: IKE_SA_INIT, flags: 0x20 }));
  assert.equal(o.verdict, Verdict.ACCEPT);
});

test('IKE SPI collision between hosts is refused and counted', () => {
  const { st, fs } = mk();
  initSa(st, fs, 0);
  const c = out(st, fs, ike(hosts[1], S, { ispi: ispiOf(0), exchange: IKE_SA_INIT }));
  assert.equal(c.verdict, Verdict.DROP);
  assert.equal(c.reason, 'nat.collision');
});

