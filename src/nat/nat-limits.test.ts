/** The learning state machine under caps, holds, clearing and turn limits; held-packet timeouts; pins, idle expiry, listing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { natConfigSchema } from './config';
import { Verdict } from '../engine/stage';
import {
  ip, out, inb, esp, ike, drainReleased, dstOf, srcOf,
  IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL,
} from '../../test/kit/nat';
import { PUB, PUB2, S, hosts, mk, ispiOf, rspiOf, initSa, many, manyInit } from '../../test/kit/nat-stage';

test('caps: SAs per host, held packets', () => {
  const { st, fs } = mk({ limits: { max_sas_per_host: 2, max_held: 1 }, public: ['203.0.113.1', '203.0.113.2'] });
  // Hosts 0 and 1 land on different public addresses (least used): independent learning per public.
  initSa(st, fs, 0);
  const o1 = out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), exchange: IKE_SA_INIT }));
  assert.equal(srcOf(o1.bytes), PUB2, 'second host bound to the second public address');
  inb(st, fs, ike(S, PUB2, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_SA_INIT, flags: 0x20 }));
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  assert.equal(out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_AUTH, msgId: 1 })).verdict, Verdict.ACCEPT,
    'another public address has its own window');
  // Hosts 2 and 3 (bound by least use: 2 on the first public, 3 on the second).
  out(st, fs, ike(hosts[2], S, { ispi: ispiOf(2), exchange: IKE_SA_INIT }));
  out(st, fs, ike(hosts[3], S, { ispi: ispiOf(3), exchange: IKE_SA_INIT }));
  assert.equal(out(st, fs, ike(hosts[2], S, { ispi: ispiOf(2), rspi: rspiOf(2), exchange: IKE_AUTH, msgId: 1 })).verdict, Verdict.HOLD);
  // The held-packet cap (1) is reached: the next SA-creating message of another host is dropped.
  assert.equal(out(st, fs, ike(hosts[3], S, { ispi: ispiOf(3), rspi: rspiOf(3), exchange: IKE_AUTH, msgId: 1 })).reason, 'nat.hold_cap');
  // Host 0 has 1 IKE SA; one ESP_IN learned makes 2; a third SA is refused.
  inb(st, fs, esp(S, PUB, 0xe0));
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, msgId: 2 }));
  const capped = inb(st, fs, esp(S, PUB, 0xe1));
  assert.equal(capped.reason, 'nat.host_sa_cap');
});

test('no host can starve the others: a retransmission replaces its held copy; holds are capped per host', () => {
  const S2 = ip('198.51.100.20');
  const { st, fs } = mk({ limits: { max_held_per_host: 4 } });
  initSa(st, fs, 0); initSa(st, fs, 1);
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  // Host 1 re-sends one IKE_AUTH 1,100 times: one slot.
  for (let k = 0; k < 1100; k++) {
    assert.equal(out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_AUTH, msgId: 1 })).verdict, Verdict.HOLD);
  }
  assert.equal(st.state.learning.heldCount, 1);
  assert.equal(fs.counts.get('nat.hold_replaced'), 1099);
  assert.equal(fs.releasedWith.length, 1099, 'each replaced copy dropped (the peer retransmits)');
  // Distinct messages from one host: capped per host.
  const reasons = [];
  for (let m = 2; m < 10; m++) reasons.push(out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: CREATE_CHILD_SA, msgId: m })).reason);
  assert.equal(st.state.learning.heldCount, 4);
  assert.deepEqual(reasons, ['', '', '', 'nat.hold_host_cap', 'nat.hold_host_cap', 'nat.hold_host_cap', 'nat.hold_host_cap', 'nat.hold_host_cap']);
  // Another host, another server: unaffected.
  out(st, fs, ike(hosts[2], S2, { ispi: ispiOf(2), exchange: IKE_SA_INIT }));
  inb(st, fs, ike(S2, PUB, { ispi: ispiOf(2), rspi: rspiOf(2), exchange: IKE_SA_INIT, flags: 0x20 }));
  assert.equal(out(st, fs, ike(hosts[2], S2, { ispi: ispiOf(2), rspi: rspiOf(2), exchange: IKE_AUTH, msgId: 1 })).verdict, Verdict.ACCEPT);
});

test('clearing: while another owed host\'s packet may still be answered, the next probe waits', () => {
  const { st, fs } = mk();
  for (let i = 0; i < 3; i++) manyInit(st, fs, i);
  for (let i = 0; i < 3; i++) { out(st, fs, ike(many[i], S, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_AUTH, msgId: 1 })); fs.time += 1200; st.tick(fs.time); drainReleased(st, fs); }
  // Host 0 probes and gets no answer in time; it backs off, and its next packet passes unprobed.
  out(st, fs, esp(many[0], S, 0x1000));
  fs.time += 1001; st.tick(fs.time);
  assert.equal(fs.counts.get('nat.probe_expired'), 1);
  assert.equal(out(st, fs, esp(many[0], S, 0x1000, 2)).verdict, Verdict.ACCEPT, 'backed off: passes');
  // Host 1's first packet now: host 0's answer could still come, so host 1 waits (clearing)...
  fs.time += 10;
  assert.equal(out(st, fs, esp(many[1], S, 0x1001)).verdict, Verdict.HOLD);
  // ...and host 0's late answer is not taken for host 1's: it stays ambiguous.
  fs.time += 400;
  assert.equal(inb(st, fs, esp(S, PUB, 0x2000)).verdict, Verdict.HOLD);
  fs.time += 700; st.tick(fs.time);
  const rel = drainReleased(st, fs);
  assert.ok(rel.some((r) => r.verdict === Verdict.ACCEPT && srcOf(r.bytes) === PUB), 'host 1 probes after the clearing');
  assert.equal(dstOf(inb(st, fs, esp(S, PUB, 0x2001)).bytes), many[1], 'host 1\'s own reply');
});

test('8 idle hosts rekeying at once: windows stop once an exchange has waited half of window_max_ms', () => {
  const { st, fs } = mk();
  for (let i = 0; i < 8; i++) manyInit(st, fs, i);
  for (let i = 0; i < 8; i++) { out(st, fs, ike(many[i], S, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_AUTH, msgId: 1 })); fs.time += 1200; st.tick(fs.time); drainReleased(st, fs); }
  // Every host is owed its idle first SA. All rekey at one instant; the server answers each at once.
  const sentAt = new Map<number, number>();
  const doneAt = new Map<number, number>();
  const pending = [...many.keys()];
  for (const i of pending) sentAt.set(i, fs.time);
  for (let round = 0; round < 40 && doneAt.size < 8; round++) {
    for (const i of pending.filter((k) => !doneAt.has(k))) {
      const r = out(st, fs, ike(many[i], S, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: CREATE_CHILD_SA, msgId: 2 }));
      if (r.verdict === Verdict.ACCEPT) {
        inb(st, fs, ike(S, PUB, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: CREATE_CHILD_SA, flags: 0x20, msgId: 2 }));
        doneAt.set(i, fs.time);
      }
    }
    fs.time += 50; st.tick(fs.time);
    for (const r of drainReleased(st, fs)) {
      if (r.verdict !== Verdict.ACCEPT) continue;
      const i = new DataView(r.bytes.buffer, r.bytes.byteOffset).getUint32(28 + 4) & 0xffff;
      inb(st, fs, ike(S, PUB, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: CREATE_CHILD_SA, flags: 0x20, msgId: 2 }));
      doneAt.set(i, fs.time);
    }
  }
  assert.equal(doneAt.size, 8);
  const waits = [...doneAt].map(([i, t]) => t - sentAt.get(i)!);
  assert.ok(Math.max(...waits) < 1000, `waits ${waits.join(",")} ms; windows ${fs.counts.get("nat.window_opened")}, skipped ${fs.counts.get("nat.window_skipped")}`);
  assert.ok((fs.counts.get('nat.window_skipped') ?? 0) > 0, 'later rekeys went without a window');
});

test('an owed host\'s outbound ESP over the SA cap is dropped, not passed unseen by learning', () => {
  const { st, fs } = mk({ limits: { max_sas_per_host: 2 } });
  manyInit(st, fs, 0);
  out(st, fs, ike(many[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  assert.equal(out(st, fs, esp(many[0], S, 0x1000)).verdict, Verdict.ACCEPT, 'second record: the ESP out');
  const r = out(st, fs, esp(many[0], S, 0x1001));
  assert.equal(r.reason, 'nat.host_sa_cap', 'owed: no record, no pass');
});

test('one LAN host cannot take every learning turn: max_windows_per_host', () => {
  const { st, fs } = mk({ limits: { max_windows_per_host: 4 } });
  const servers = Array.from({ length: 6 }, (_, k) => ip(`198.51.100.${100 + k}`));
  for (const [k, srv] of servers.entries()) {
    out(st, fs, ike(hosts[0], srv, { ispi: ispiOf(10 + k), exchange: IKE_SA_INIT }));
    out(st, fs, ike(hosts[0], srv, { ispi: ispiOf(10 + k), rspi: rspiOf(10 + k), exchange: IKE_AUTH, msgId: 1 }));
  }
  assert.equal(st.state.learning.turns, 4, 'four windows for host 0, the rest without');
  assert.equal(fs.counts.get('nat.window_cap'), 2);
  // Another host still gets its window.
  out(st, fs, ike(hosts[1], servers[5], { ispi: ispiOf(30), exchange: IKE_SA_INIT }));
  out(st, fs, ike(hosts[1], S, { ispi: ispiOf(31), exchange: IKE_SA_INIT }));
  out(st, fs, ike(hosts[1], S, { ispi: ispiOf(31), rspi: rspiOf(31), exchange: IKE_AUTH, msgId: 1 }));
  assert.equal(st.state.learning.turns, 5);
});

test('held packets that time out are dropped (never leave untranslated), also at shutdown', () => {
  const { st, fs } = mk({ timeouts: { hold_ms: 2000 } });
  initSa(st, fs, 0); initSa(st, fs, 1); initSa(st, fs, 2);
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: IKE_AUTH, msgId: 1 }));
  assert.equal(out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: IKE_AUTH, msgId: 1 })).verdict, Verdict.HOLD);
  assert.equal(st.state.learning.heldCount, 1);
  // The engine timed it out first (its own verdict applies): accounted, never released later.
  st.onHoldExpired(1);
  assert.equal(st.state.learning.heldCount, 0);
  inb(st, fs, esp(S, PUB, 0xf0));
  assert.equal(fs.released.length, 0);
  // Our own deadline: a pending inbound packet is dropped after pending_hold_ms.
  const { st: st2, fs: fs2 } = mk();
  for (let i = 0; i < 2; i++) manyInit(st2, fs2, i);
  for (let i = 0; i < 2; i++) { out(st2, fs2, ike(many[i], S, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: IKE_AUTH, msgId: 1 })); fs2.time += 1100; st2.tick(fs2.time); drainReleased(st2, fs2); }
  assert.equal(inb(st2, fs2, esp(S, PUB, 0x2001)).verdict, Verdict.HOLD);
  fs2.time += 2100; st2.tick(fs2.time);
  assert.deepEqual(fs2.releasedWith.map((x) => x[1]), [Verdict.DROP]);
  assert.equal(fs2.counts.get('nat.ambiguous'), 1);
  assert.equal(inb(st2, fs2, esp(S, PUB, 0x2001, 2)).verdict, Verdict.HOLD);
  st2.close();
  assert.deepEqual(fs2.releasedWith.map((x) => x[1]), [Verdict.DROP, Verdict.DROP], 'shutdown drops what is held');
});

test('check: hold_ms shorter than a window is refused', () => {
  assert.throws(() => natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', timeouts: { hold_ms: 500 } }), /hold_ms/);
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

test('IKE SA rekey where the host speaks first on the new IKE SA: settled exactly, the window closes at once', () => {
  const { st, fs } = mk();
  initSa(st, fs, 0); initSa(st, fs, 1);
  // Host 0 rekeys its IKE SA (CREATE_CHILD_SA on the old one; the new SPIs travel encrypted).
  out(st, fs, ike(hosts[0], S, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, msgId: 3 }));
  const held = out(st, fs, ike(hosts[1], S, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: CREATE_CHILD_SA, msgId: 3 }));
  assert.equal(held.verdict, Verdict.HOLD);
  inb(st, fs, ike(S, PUB, { ispi: ispiOf(0), rspi: rspiOf(0), exchange: CREATE_CHILD_SA, flags: 0x20, msgId: 3 }));
  // Host 0 sends first on the new IKE SA: both SPIs set, unknown to sluice. Nothing inbound is left
  // to learn for this exchange, so the window must not sit open.
  const o = out(st, fs, ike(hosts[0], S, { ispi: 0x7000n, rspi: 0x8000n, exchange: INFORMATIONAL, msgId: 0 }));
  assert.equal(o.verdict, Verdict.ACCEPT);
  assert.equal(st.state.learning.turns, 0, 'window closed by the host\'s first message on its new IKE SA');
  assert.equal(st.state.learning.owed(S, hosts[0], 0), 0);
  const rel = drainReleased(st, fs);
  assert.equal(rel.length, 1);
  assert.equal(rel[0].verdict, Verdict.ACCEPT, 'host 1 no longer waits');
  // Host 1's rekey: the server speaks first on the new IKE SA; learned for host 1, not ambiguous.
  inb(st, fs, ike(S, PUB, { ispi: ispiOf(1), rspi: rspiOf(1), exchange: CREATE_CHILD_SA, flags: 0x20, msgId: 3 }));
  const r = inb(st, fs, ike(S, PUB, { ispi: 0x7001n, rspi: 0x8001n, exchange: INFORMATIONAL, flags: 0x00 }));
  assert.equal(r.verdict, Verdict.ACCEPT, r.reason);
  assert.equal(dstOf(r.bytes), hosts[1]);
  assert.equal(dstOf(inb(st, fs, ike(S, PUB, { ispi: 0x7000n, rspi: 0x8000n, exchange: INFORMATIONAL, flags: 0x20 })).bytes), hosts[0]);
});

test('a held inbound IKE message on an ambiguous new IKE SA goes through once its host speaks on it', () => {
  const { st, fs } = mk();
  for (let i = 0; i < 2; i++) manyInit(st, fs, i);
  for (let i = 0; i < 2; i++) { out(st, fs, ike(many[i], S, { ispi: ispiOf(i), rspi: rspiOf(i), exchange: CREATE_CHILD_SA, msgId: 2 })); fs.time += 1100; st.tick(fs.time); drainReleased(st, fs); }
  const r = inb(st, fs, ike(S, PUB, { ispi: 0x7001n, rspi: 0x8001n, exchange: INFORMATIONAL, flags: 0x00 }));
  assert.equal(r.verdict, Verdict.HOLD);
  out(st, fs, ike(many[1], S, { ispi: 0x7001n, rspi: 0x8001n, exchange: INFORMATIONAL, msgId: 0, flags: 0x08 }));
  const rel = drainReleased(st, fs);
  assert.equal(rel.length, 1);
  assert.equal(dstOf(rel[0].bytes), many[1]);
});
