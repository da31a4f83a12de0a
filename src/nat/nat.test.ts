/** The learning state machine, driven by synthetic packet sequences (no root, fake services). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { natConfigSchema, type NatConfigInput } from './config';
import { NatStage } from './stage';
import { Verdict } from '../engine/stage';
import { SaKind } from './table';
import {
  FakeServices, ip, out, inb, esp, espInUdp, ike, keepalive, drainReleased, dstOf, srcOf, ipv4Checksum, udpChecksumOk,
  IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL,
} from './testkit';

const PUB = ip('203.0.113.1');
const PUB2 = ip('203.0.113.2');
const S = ip('198.51.100.10');
const hosts = [ip('10.0.0.11'), ip('10.0.0.12'), ip('10.0.0.13'), ip('10.0.0.14')];

function mk(over: Partial<NatConfigInput> = {}): { st: NatStage; fs: FakeServices } {
  const cfg = natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path: null }, ...over });
  const st = new NatStage(cfg);
  const fs = new FakeServices();
  st.init(fs);
  return { st, fs };
}

const ispiOf = (i: number): bigint => 0x1111000000000000n + BigInt(i);
const rspiOf = (i: number): bigint => 0x2222000000000000n + BigInt(i);

/** Host i: IKE_SA_INIT out + response in. */
function initSa(st: NatStage, fs: FakeServices, i: number): void {
  const o = out(st, fs, ike(hosts[i], S, { ispi: ispiOf(i), exchange: IKE_SA_INIT }));
  assert.equal(o.verdict, Verdict.ACCEPT);
  assert.equal(srcOf(o.bytes), PUB);
  const r = inb(st, fs, ike(S, PUB, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_SA_INIT, flags: 0x20 }));
  assert.equal(r.verdict, Verdict.ACCEPT);
  assert.equal(dstOf(r.bytes), hosts[i]);
}

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

test('concurrent negotiations of 4 hosts with one server are serialized, none misrouted', () => {
  const { st, fs } = mk();
  for (let i = 0; i < 4; i++) initSa(st, fs, i);
  // All four send IKE_AUTH at the same instant.
  const res = hosts.map((_, i) => out(st, fs, ike(hosts[i], S, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_AUTH, msgId: 1 })));
  assert.equal(res[0].verdict, Verdict.ACCEPT);
  for (let i = 1; i < 4; i++) assert.equal(res[i].verdict, Verdict.HOLD);
  const spiIn = (i: number): number => 0xc0000000 + i;
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
      windowHost = [...Array(4).keys()].find((i) => !learned.has(i) && st.state.winHost[0] === hosts[i])!;
      assert.ok(windowHost !== undefined);
    }
  }
  assert.equal(learned.size, 4);
  // Every SPI still goes to its own host, in any order.
  for (const i of [3, 1, 0, 2]) assert.equal(dstOf(inb(st, fs, esp(S, PUB, spiIn(i), 9)).bytes), hosts[i]);
  assert.equal(st.state.counters[15 /* WINDOW_LEARNED */], 4);
});

test('window timeout leaves an expectation; sole expectation resolves, two are ambiguous', () => {
  const { st, fs } = mk({ timeouts: { window_max_ms: 1000 } });
  initSa(st, fs, 0); initSa(st, fs, 1);
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  fs.time += 1500; st.tick(fs.time);
  const late = inb(st, fs, esp(S, PUB, 0xd0));
  assert.equal(dstOf(late.bytes), hosts[0], 'sole expectation: host 0');
  // Two expectations now: host 0 and host 1 both time out.
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, msgId: 2 }));
  fs.time += 1500; st.tick(fs.time);
  out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_AUTH, msgId: 1 }));
  fs.time += 1500; st.tick(fs.time);
  const amb = inb(st, fs, esp(S, PUB, 0xd1));
  assert.equal(amb.verdict, Verdict.DROP);
  assert.equal(amb.reason, 'nat.ambiguous');
  // Expectations idle out: afterwards unknown, no state.
  fs.time += 121_000; st.tick(fs.time);
  assert.equal(inb(st, fs, esp(S, PUB, 0xd1)).reason, 'nat.unknown_spi');
});

test('an expired window leaves an expectation that makes a later window ambiguous (never misroute)', () => {
  // strongSwan order: host 0 finishes IKE_AUTH and stays idle, its window expires; host 1's window
  // opens; host 0's first ESP (its SPI) arrives during host 1's window. It must not go to host 1.
  const { st, fs } = mk({ timeouts: { window_max_ms: 1000 } });
  initSa(st, fs, 0); initSa(st, fs, 1);
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  fs.time += 1500; st.tick(fs.time);
  out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_AUTH, msgId: 1 }));
  const r = inb(st, fs, esp(S, PUB, 0xe0));
  assert.equal(r.verdict, Verdict.DROP);
  assert.equal(r.reason, 'nat.ambiguous');
  assert.equal(st.state.sas.find(SaKind.ESP_IN, 0, S, 0xe0, 0), -1, 'no state for an ambiguous SPI');
  // With no other host owed an SPI, a window learns as before, and clears its own host's expectation.
  const { st: st2, fs: fs2 } = mk({ timeouts: { window_max_ms: 1000 } });
  initSa(st2, fs2, 0);
  out(st2, fs2, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  fs2.time += 1500; st2.tick(fs2.time);
  out(st2, fs2, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, msgId: 2 }));
  assert.equal(dstOf(inb(st2, fs2, esp(S, PUB, 0xe1)).bytes), hosts[0]);
  assert.equal(st2.state.expectationHosts(st2.state.peer(S, 0)).length, 0);
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

test('IKE SA rekey: unknown inbound IKE SPIs in the window belong to the window host', () => {
  const { st, fs } = mk();
  initSa(st, fs, 0);
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, msgId: 3 }));
  const r = inb(st, fs, ike(S, PUB, { ispi: 0x7777n, rspi: 0x8888n, exchange: INFORMATIONAL, flags: 0x00 }));
  assert.equal(r.verdict, Verdict.ACCEPT);
  assert.equal(dstOf(r.bytes), hosts[0]);
  // An IKE_SA_INIT request from a server (no responder SPI) never gets learned into a window.
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

test('caps: SAs per host, held packets, windows', () => {
  const { st, fs } = mk({ limits: { max_sas_per_host: 2, max_held: 1, max_windows: 1 }, public: ['203.0.113.1', '203.0.113.2'] });
  // Hosts 0 and 1 land on different public addresses (least used): independent windows per public.
  initSa(st, fs, 0);
  const o1 = out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), exchange: IKE_SA_INIT }));
  assert.equal(srcOf(o1.bytes), PUB2, 'second host bound to the second public address');
  inb(st, fs, ike(S, PUB2, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_SA_INIT, flags: 0x20 }));
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  const wc = out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_AUTH, msgId: 1 }));
  assert.equal(wc.reason, 'nat.window_cap');
  initSa(st, fs, 2); // host 2 on PUB (3 hosts: 0,2 on PUB)
  assert.equal(out(st, fs, ike(hosts[2], S, { ispi: ispiOf(2), rspi: rspiOf(2), exchange: IKE_AUTH })).verdict, Verdict.HOLD);
  // The held-packet cap (1) is reached: the next SA-creating message of another host is dropped.
  assert.equal(out(st, fs, ike(hosts[2], S, { ispi: ispiOf(2), rspi: rspiOf(2), exchange: IKE_AUTH })).reason, 'nat.hold_cap');
  // Host 0 has 1 IKE SA; one ESP_IN learned makes 2; a third SA is refused.
  inb(st, fs, esp(S, PUB, 0xe0));
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, msgId: 2 }));
  const capped = inb(st, fs, esp(S, PUB, 0xe1));
  assert.equal(capped.reason, 'nat.host_sa_cap');
});

test('hold expiry is accounted; held packet no longer released', () => {
  const { st, fs } = mk();
  initSa(st, fs, 0); initSa(st, fs, 1);
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH }));
  assert.equal(out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_AUTH })).verdict, Verdict.HOLD);
  assert.equal(st.state.heldCount, 1);
  st.onHoldExpired(1);
  assert.equal(st.state.heldCount, 0);
  inb(st, fs, esp(S, PUB, 0xf0));
  assert.equal(fs.released.length, 0);
});

test('pin and unpin', () => {
  const { st, fs } = mk();
  assert.equal(inb(st, fs, esp(S, PUB, 0x1234)).reason, 'nat.unknown_spi');
  st.command('sa-pin', { host: '10.0.0.13', server: '198.51.100.10', spi: '0x1234' });
  assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0x1234)).bytes), hosts[2]);
  fs.time += 10_000_000; st.tick(fs.time);
  assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0x1234)).bytes), hosts[2], 'pins never idle out');
  assert.throws(() => st.command('sa-pin', { host: '10.0.0.14', server: '198.51.100.10', spi: 0x1234 }), /mapped to 10.0.0.13/);
  st.command('sa-unpin', { server: '198.51.100.10', spi: '1234' });
  assert.equal(inb(st, fs, esp(S, PUB, 0x1234)).reason, 'nat.unknown_spi');
});

test('idle timeouts remove SAs; sa-list groups like swanctl --list-sas', () => {
  const { st, fs } = mk({ timeouts: { esp_idle_s: 10, ike_idle_s: 20 } });
  initSa(st, fs, 0);
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH }));
  inb(st, fs, esp(S, PUB, 0xa0));
  out(st, fs, esp(hosts[0], S, 0xb0));
  const list = st.command('sa-list', {}) as { host: string; ike: unknown[]; esp_in: { spi: string; packets: number }[]; esp_out: unknown[] }[];
  assert.equal(list.length, 1);
  assert.equal(list[0].host, '10.0.0.11');
  assert.equal(list[0].ike.length, 1);
  assert.deepEqual(list[0].esp_in.map((r) => [r.spi, r.packets]), [['000000a0', 1]]);
  assert.equal(list[0].esp_out.length, 1);
  fs.time += 11_000; st.tick(fs.time);
  assert.equal(st.state.sas.count, 1, 'ESP idled out, IKE kept');
  fs.time += 10_000; st.tick(fs.time);
  assert.equal(st.state.sas.count, 0);
});

test('servers are opt-in', () => {
  const { st, fs } = mk({ servers: ['192.0.2.0/24'] });
  const o = out(st, fs, esp(hosts[0], S, 0x1));
  assert.equal(o.verdict, Verdict.CONTINUE, 'not a configured server: left alone');
  const o2 = out(st, fs, esp(hosts[0], ip('192.0.2.9'), 0x1));
  assert.equal(srcOf(o2.bytes), PUB);
});

test('IKE SA rekey where the host speaks first on the new IKE SA: the window closes at once, no expectation left', () => {
  const { st, fs } = mk();
  initSa(st, fs, 0); initSa(st, fs, 1);
  // Host 0 rekeys its IKE SA (CREATE_CHILD_SA on the old one; the new SPIs travel encrypted).
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, msgId: 3 }));
  const held = out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: CREATE_CHILD_SA, msgId: 3 }));
  assert.equal(held.verdict, Verdict.HOLD);
  inb(st, fs, ike(S, PUB, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, flags: 0x20, msgId: 3 }));
  // Host 0 sends first on the new IKE SA: both SPIs set, unknown to sluice. Nothing inbound is left
  // to learn for this exchange, so the window must not sit open until window_max_ms.
  const o = out(st, fs, ike(hosts[0], S, { ispi: 0x7000n, rspi: 0x8000n, exchange: INFORMATIONAL, msgId: 0 }));
  assert.equal(o.verdict, Verdict.ACCEPT);
  assert.equal(st.state.openWindows, 0, 'window closed by the host\'s first message on its new IKE SA');
  const rel = drainReleased(st, fs);
  assert.equal(rel.length, 1);
  assert.equal(rel[0].verdict, Verdict.ACCEPT, 'host 1 no longer waits');
  // Host 1's rekey: the server speaks first on the new IKE SA; learned for host 1, not ambiguous.
  inb(st, fs, ike(S, PUB, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: CREATE_CHILD_SA, flags: 0x20, msgId: 3 }));
  const r = inb(st, fs, ike(S, PUB, { ispi: 0x7001n, rspi: 0x8001n, exchange: INFORMATIONAL, flags: 0x00 }));
  assert.equal(r.verdict, Verdict.ACCEPT, r.reason);
  assert.equal(dstOf(r.bytes), hosts[1]);
  // Later: the server's traffic on host 0's new IKE SA, and the window's timeout left no expectation.
  assert.equal(dstOf(inb(st, fs, ike(S, PUB, { ispi: 0x7000n, rspi: 0x8000n, exchange: INFORMATIONAL, flags: 0x20 })).bytes), hosts[0]);
  fs.time += 60_000;
  st.tick(fs.time);
  assert.deepEqual(st.state.expectationHosts(st.state.peer(S, 0)), []);
});
