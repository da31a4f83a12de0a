/**
 * Replication between two NAT stages over loopback TCP (no root): resync on connect, live changes,
 * a wrong key and a replayed capture rejected and counted, the backlog bound, the resync after
 * 1,000 new SAs while the standby was down, and promotion (the standby drops, then translates).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { natConfigSchema } from '../nat/config';
import { NatStage } from '../nat/stage';
import { SaKind } from '../nat/table';
import { Verdict } from '../engine/stage';
import { FakeServices, ip, inb, out, esp, ike, dstOf, IKE_SA_INIT, IKE_AUTH } from '../../test/kit/nat';
import { haConfigSchema } from './config';
import { Ha } from './index';
import { journaledEntries } from './records';
import { DIR_ACTIVE, DIR_STANDBY, FrameReader, FrameWriter, T, deriveKeys, nonce } from './protocol';

const PUB = ip('203.0.113.1');
const S = ip('198.51.100.10');
const KEY = randomBytes(32);
const quiet = { info() {}, warn() {} };

function nat(): { st: NatStage; fs: FakeServices } {
  const st = new NatStage(natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path: null } }));
  const fs = new FakeServices();
  st.init(fs);
  return { st, fs };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

function mkHa(role: 'active' | 'standby', listen: number, peer: number, key = KEY, over: Record<string, unknown> = {}): Ha {
  const cfg = haConfigSchema.parse({ role, listen: `127.0.0.1:${listen}`, peers: [`127.0.0.1:${peer}`], key_file: '/unused',
    heartbeat_ms: 100, reconnect_ms: 50, ...over });
  return new Ha(cfg, quiet, key);
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sig = (st: NatStage) => journaledEntries(st.state).map((e) => `${e.kind} ${e.server} ${e.host} ${e.a} ${e.b} ${e.rh} ${e.rl} ${e.flags & ~4}`).sort();

function addEsp(st: NatStage, host: number, spi: number): number {
  const s = st.state;
  const h = s.host(host, 0);
  return s.addSa(SaKind.ESP_IN, 0, S, h, spi, 0, 0, 0, true);
}

interface Pair { a: Ha; b: Ha; na: ReturnType<typeof nat>; nb: ReturnType<typeof nat>; pa: number; pb: number }

async function pair(): Promise<Pair> {
  const pa = await freePort(), pb = await freePort();
  const na = nat(), nb = nat();
  const a = mkHa('active', pa, pb), b = mkHa('standby', pb, pa);
  a.attach(na.st); b.attach(nb.st);
  await b.start(); await a.start();
  return { a, b, na, nb, pa, pb };
}

test('resync on connect, then live changes (puts and deletes) in order; the standby only drops', async () => {
  const pa = await freePort(), pb = await freePort();
  const na = nat(), nb = nat();
  // Before the standby is there: these reach it through the resync.
  for (let i = 0; i < 50; i++) addEsp(na.st, ip('10.0.0.11') + (i % 5), 0x1000 + i);
  const a = mkHa('active', pa, pb), b = mkHa('standby', pb, pa);
  a.attach(na.st); b.attach(nb.st);
  try {
    await b.start(); await a.start();
    await until('resync', () => b.counters.resyncs_received === 1);
    assert.deepEqual(sig(nb.st), sig(na.st));
    // Live: an IKE SA seen in cleartext (its responder SPI learned later), a delete.
    out(na.st, na.fs, ike(ip('10.0.0.20'), S, { ispi: 0x77n, exchange: IKE_SA_INIT }));
    inb(na.st, na.fs, ike(S, PUB, { ispi: 0x77n, rspi: 0x88n, exchange: IKE_SA_INIT, flags: 0x20 }));
    na.st.state.removeSa(na.st.state.sas.find(SaKind.ESP_IN, 0, S, 0x1003, 0));
    await until('live changes', () => sig(nb.st).length === 50 && sig(nb.st).join() === sig(na.st).join());
    assert.equal(nb.st.passive, true);
    // The standby holds the mapping but translates nothing: it drops (counted) and emits nothing.
    const r = inb(nb.st, nb.fs, esp(S, PUB, 0x1004));
    assert.equal(r.verdict, Verdict.DROP);
    assert.equal(r.reason, 'nat.ha_standby');
    const o = out(nb.st, nb.fs, ike(ip('10.0.0.21'), S, { ispi: 0x99n, exchange: IKE_SA_INIT }));
    assert.equal(o.verdict, Verdict.DROP);
    assert.equal(nb.st.state.sas.find(SaKind.IKE, 0, S, 0, 0x99), -1, 'nothing learned on the standby');
    await until('acks', () => (a.status().peers as { unacked: number }[])[0]!.unacked === 0);
    assert.equal(a.counters.rejectedTotal + b.counters.rejectedTotal, 0);
  } finally { await a.close(); await b.close(); }
});

test('a wrong key is rejected and counted; the standby applies nothing', async () => {
  const pa = await freePort(), pb = await freePort();
  const na = nat(), nb = nat();
  addEsp(na.st, ip('10.0.0.11'), 0x2000);
  const a = mkHa('active', pa, pb, randomBytes(32)), b = mkHa('standby', pb, pa);
  a.attach(na.st); b.attach(nb.st);
  try {
    await b.start(); await a.start();
    await until('rejections', () => b.counters.rejected.bad_mac >= 2);
    assert.equal(nb.st.state.sas.count, 0);
    assert.equal(b.counters.records_applied, 0);
  } finally { await a.close(); await b.close(); }
});

test('a replayed capture of a whole session is rejected and counted (fresh nonce: every message fails)', async () => {
  const { a, b, na, nb, pb } = await pair().then(async (p) => { await p.a.close(); return p; });
  // A relay between a fresh active and the standby records what the active sent.
  const pc = await freePort();
  const captured: Buffer[] = [];
  const relay = net.createServer((c) => {
    const up = net.connect(pb, '127.0.0.1');
    c.on('data', (d) => { captured.push(d); up.write(d); });
    up.on('data', (d) => c.write(d));
    c.on('close', () => up.destroy()); up.on('close', () => c.destroy());
    c.on('error', () => {}); up.on('error', () => {});
  });
  await new Promise<void>((r) => relay.listen(pc, '127.0.0.1', () => r()));
  const a2 = mkHa('active', await freePort(), pc);
  addEsp(na.st, ip('10.0.0.11'), 0x3000);
  a2.attach(na.st);
  try {
    await a2.start();
    await until('resync through the relay', () => b.counters.resyncs_received === 1);
    addEsp(na.st, ip('10.0.0.11'), 0x3001);
    await until('live record', () => nb.st.state.sas.count === 2);
    await a2.close();
    relay.close();
    // Standby state changes after the capture; the replay must not bring 0x3001 back.
    nb.st.state.removeSa(nb.st.state.sas.find(SaKind.ESP_IN, 0, S, 0x3001, 0));
    const before = b.counters.rejected.bad_mac;
    const sock = net.connect(pb, '127.0.0.1');
    sock.on('error', () => {});
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(Buffer.concat(captured));
    await until('replay rejected', () => b.counters.rejected.bad_mac === before + 1);
    sock.destroy();
    assert.equal(nb.st.state.sas.count, 1, 'nothing applied from the replay');
    assert.equal(b.counters.resyncs_received, 1);
    void a;
  } finally { await a2.close(); await b.close(); }
});

test('backlog bound: a standby that stops acknowledging is dropped (counted) and resynced on reconnect', async () => {
  const pa = await freePort(), pb = await freePort();
  const na = nat();
  // A standby that authenticates properly, then stops reading and acknowledging after the resync.
  let sessions = 0;
  const server = net.createServer((sock) => {
    const r = new FrameReader(KEY, DIR_ACTIVE);
    const w = new FrameWriter(KEY, DIR_STANDBY);
    sessions++;
    sock.on('error', () => {});
    sock.on('data', (d) => {
      r.push(d);
      for (let f = r.next(); f; f = r.next()) {
        if (f.type === T.HELLO) {
          const n = nonce();
          sock.write(w.frame(T.HELLO_REPLY, Buffer.concat([n, f.payload])));
          const k = deriveKeys(KEY, f.payload, n);
          r.key = k.toStandby; w.key = k.toActive;
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(pb, '127.0.0.1', () => r()));
  const a = mkHa('active', pa, pb, KEY, { backlog: 100, heartbeat_ms: 10_000 });
  a.attach(na.st);
  try {
    await a.start();
    await until('session', () => (a.status().peers as { phase: string }[])[0]!.phase === 'live');
    for (let i = 0; i < 101; i++) addEsp(na.st, ip('10.0.0.11') + (i >> 6), 0x4000 + i);
    assert.equal(a.counters.backlog_overflow, 1);
    await until('reconnect with a full resync', () => a.counters.resyncs_sent === 2 && sessions === 2);
  } finally { await a.close(); server.close(); }
});

test('a standby down during 1,000 new SAs resyncs on reconnect (stale records removed); promotion rebuilds the books', async () => {
  const { a, b, na, nb, pb, pa } = await pair();
  let b2: Ha | null = null;
  try {
    addEsp(na.st, ip('10.0.0.11'), 0x5000);
    await until('first record', () => nb.st.state.sas.count === 1);
    await b.close();
    na.st.state.removeSa(na.st.state.sas.find(SaKind.ESP_IN, 0, S, 0x5000, 0));
    for (let i = 0; i < 1000; i++) addEsp(na.st, ip('10.0.1.0') + (i >> 4), 0x6000 + i);
    assert.equal(nb.st.state.sas.count, 1, 'the standby still has the stale record');
    b2 = mkHa('standby', pb, pa);
    b2.attach(nb.st);
    await b2.start();
    await until('resync of 1,001 records', () => b2!.counters.resyncs_received === 1);
    assert.deepEqual(sig(nb.st), sig(na.st));
    assert.equal(nb.st.state.sas.find(SaKind.ESP_IN, 0, S, 0x5000, 0), -1, 'the record deleted meanwhile is gone');
    // Live: a host becomes owed an SA on the active (IKE_AUTH passed, no inbound SPI yet); the
    // owed count rides on its IKE record, which the standby already had (an update, not a new record).
    inb(na.st, na.fs, ike(S, PUB, { ispi: 0xabn, rspi: 0xcdn, exchange: IKE_SA_INIT, flags: 0x20 }));
    out(na.st, na.fs, ike(ip('10.0.9.9'), S, { ispi: 0xabn, rspi: 0xcdn, exchange: IKE_AUTH, msgId: 1 }));
    inb(na.st, na.fs, ike(S, PUB, { ispi: 0xabn, rspi: 0xcdn, exchange: IKE_AUTH, flags: 0x20, msgId: 1 }));
    const owed = na.st.state.learning.owed(S, ip('10.0.9.9'), 0);
    assert.equal(owed, 1);
    await until('owed count replicated', () => sig(nb.st).join() === sig(na.st).join());
    // Failover: the active dies; the standby is promoted and translates with the replicated state.
    await a.close();
    const st = b2.promote();
    assert.equal(st.role, 'active');
    assert.equal(nb.st.passive, false);
    assert.equal(b2.lastPromoteRecords, 1001);
    assert.ok(b2.lastPromoteMs < 1000, `rebuild took ${b2.lastPromoteMs} ms`);
    assert.equal(nb.st.state.learning.owed(S, ip('10.0.9.9'), 0), owed, 'owed count rebuilt from the IKE record');
    const r = inb(nb.st, nb.fs, esp(S, PUB, 0x6000 + 17));
    assert.equal(r.verdict, Verdict.ACCEPT);
    assert.equal(dstOf(r.bytes), ip('10.0.1.0') + 1);
    assert.equal(b2.promote().changed, false, 'promote is idempotent');
    // The promoted node refuses streams now (two actives would overwrite each other).
    const a2 = mkHa('active', await freePort(), pb);
    a2.attach(nat().st);
    await a2.start();
    await until('refused', () => b2!.counters.rejected.not_standby >= 1);
    await a2.close();
  } finally { await a.close(); await b.close(); await b2?.close(); }
});

test('a standby writes what it applies to its own journal: restarted from it, it holds the same mappings', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ha-journal-'));
  const journaled = () => {
    const st = new NatStage(natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path: join(dir, 'b.journal') } }));
    st.init(new FakeServices());
    return st;
  };
  const pa = await freePort(), pb = await freePort();
  const na = nat();
  const nb = journaled();
  const a = mkHa('active', pa, pb), b = mkHa('standby', pb, pa);
  a.attach(na.st); b.attach(nb);
  try {
    for (let i = 0; i < 20; i++) addEsp(na.st, ip('10.0.0.11') + (i % 3), 0x7000 + i);
    await b.start(); await a.start();
    await until('resync', () => b.counters.resyncs_received === 1);
    na.st.state.removeSa(na.st.state.sas.find(SaKind.ESP_IN, 0, S, 0x7003, 0));
    out(na.st, na.fs, ike(ip('10.0.0.30'), S, { ispi: 0x55n, exchange: IKE_SA_INIT }));
    inb(na.st, na.fs, ike(S, PUB, { ispi: 0x55n, rspi: 0x66n, exchange: IKE_SA_INIT, flags: 0x20 }));
    await until('live changes', () => sig(nb).join() === sig(na.st).join());
    await b.close();
    await nb.close();
    const again = journaled();
    // The mappings; flags differ by design: a replay takes a host with an IKE SA and no inbound ESP
    // SA as owed one (books.afterRestore) and writes that count into the IKE record.
    const maps = (st: NatStage) => sig(st).map((l) => l.split(' ').slice(0, 7).join(' '));
    assert.deepEqual(maps(again), maps(na.st));
    assert.equal(again.state.sas.count, na.st.state.sas.count);
    await again.close();
  } finally { await a.close(); await b.close(); rmSync(dir, { recursive: true, force: true }); }
});
