/**
 * src/io without root: the layout contract (TypeScript, C++ header, built addon), verdict encoding,
 * and round trips through NfQueue / Tun / Injector over the fake binding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HOOK_FORWARD } from '../engine/stage';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as L from './batch-layout';
import { addonPath, checkLayout, loadBinding } from './binding';
import { FakeBinding } from './fake';
import { Injector } from './inject';
import { NfQueue } from './nfqueue';
import { Tun } from './tun';
import { decodeVerdict, queueVerdict, readVerdict, setVerdict, verdictName } from './verdict';

const root = resolve(__dirname, existsSync(resolve(__dirname, '../../binding.gyp')) ? '../..' : '../../..');

test('layout: native/batch_layout.h has the same numbers as batch-layout.ts', () => {
  const header = readFileSync(join(root, 'native/batch_layout.h'), 'utf8');
  const fromHeader: Record<string, number> = {};
  for (const m of header.matchAll(/constexpr uint32_t (\w+) = (0x[0-9a-f]+|\d+);/gi)) fromHeader[m[1]!] = Number(m[2]);
  for (const [k, v] of Object.entries(L.LAYOUT)) assert.equal(fromHeader[k], v, `${k} in native/batch_layout.h`);
  assert.equal(fromHeader.IN_TRUNCATED, L.IN_TRUNCATED);
  assert.equal(fromHeader.IN_HAS_MARK, L.IN_HAS_MARK);
  // Every slot index is distinct and inside the stride.
  const slots = Object.entries(L.LAYOUT).filter(([k]) => k.startsWith('M_')).map(([, v]) => v);
  assert.equal(new Set(slots).size, slots.length);
  for (const s of slots) assert.ok(s < L.META_STRIDE);
});

test('layout: the built addon exports the same numbers (skips when the addon is not built)', (t) => {
  if (addonPath() === null) {
    t.skip('addon not built (npm run build:native)');
    return;
  }
  const b = loadBinding();
  assert.deepEqual(Object.fromEntries(Object.keys(L.LAYOUT).map((k) => [k, b.layout[k]])), { ...L.LAYOUT });
});

test('checkLayout names the first differing slot and refuses', () => {
  assert.doesNotThrow(() => checkLayout({ ...L.LAYOUT }));
  assert.throws(() => checkLayout({ ...L.LAYOUT, M_MARK: 9 }), /M_MARK is 9 in the addon, 4 in src\/io\/batch-layout.ts/);
  assert.throws(() => checkLayout(undefined), /exports no layout/);
});

test('verdict encoding: NF_QUEUE carries the queue in the high 16 bits', () => {
  assert.equal(queueVerdict(0), 3);
  assert.equal(queueVerdict(7), 0x70003);
  assert.equal(queueVerdict(65535), 0xffff0003);
  assert.deepEqual(decodeVerdict(queueVerdict(513)), { code: L.V_QUEUE, queue: 513 });
  assert.equal(verdictName(queueVerdict(2)), 'queue 2');
  assert.equal(verdictName(L.V_ACCEPT), 'accept');
  assert.equal(verdictName(L.V_DROP), 'drop');
  assert.equal(verdictName(L.V_HOLD), 'hold');
  assert.equal(verdictName(L.V_REPEAT), 'repeat');
});

test('setVerdict / readVerdict: mark and rewrite flags', () => {
  const meta = new Uint32Array(L.META_STRIDE * 3);
  meta[L.M_LENGTH] = 60;
  setVerdict(meta, 0, L.V_ACCEPT);
  assert.deepEqual(readVerdict(meta, 0), { verdict: L.V_ACCEPT, mark: -1, newLength: -1 });
  assert.equal(meta[L.M_NEW_LENGTH], 60);
  setVerdict(meta, 1, L.V_ACCEPT, 0xdeadbeef);
  assert.deepEqual(readVerdict(meta, 1), { verdict: L.V_ACCEPT, mark: 0xdeadbeef, newLength: -1 });
  assert.equal(meta[L.META_STRIDE + L.M_OUT_FLAGS], L.OUT_SET_MARK);
  setVerdict(meta, 2, L.V_DROP, 0, 44);
  assert.deepEqual(readVerdict(meta, 2), { verdict: L.V_DROP, mark: 0, newLength: 44 });
  assert.equal(meta[2 * L.META_STRIDE + L.M_OUT_FLAGS], L.OUT_SET_MARK | L.OUT_REWRITTEN);
});

const pkt = (n: number, len = 40) => Uint8Array.from({ length: len }, (_, i) => (i === 0 ? 0x45 : (n + i) & 255));

test('fake queue round trip: metadata in, accept / drop / mark / rewrite / hold out, one handler call per batch', () => {
  const fake = new FakeBinding();
  let calls = 0;
  const q = NfQueue.open({ queue: 4, batchSize: 8 }, (b) => {
    calls++;
    assert.equal(b.count, 5);
    const m = b.meta;
    // Zero-copy views: the bytes are where meta says.
    for (let i = 0; i < b.count; i++) assert.equal(b.slab[m[i * L.META_STRIDE + L.M_OFFSET]!], 0x45);
    assert.equal(m[L.M_INDEV], 2);
    assert.equal(m[L.M_MARK], 7);
    assert.equal(m[L.M_IN_FLAGS], L.IN_HAS_MARK);
    assert.equal(m[L.M_HOOK], HOOK_FORWARD);
    setVerdict(m, 1, L.V_DROP);
    setVerdict(m, 2, L.V_ACCEPT, 0x10);
    const off = m[3 * L.META_STRIDE + L.M_OFFSET]!;
    b.slab[off + 1] = 0xee;
    setVerdict(m, 3, L.V_ACCEPT, -1, 30);
    setVerdict(m, 4, L.V_HOLD);
  }, fake);
  const sent = fake.queue(4).feed([0, 1, 2, 3, 4].map((n) => ({ bytes: pkt(n), indev: 2, mark: 7, id: 10 + n })));
  assert.equal(calls, 1);
  assert.deepEqual(sent.map((s) => [s.id, s.verdict, s.mark]), [[10, 1, -1], [11, 0, -1], [12, 1, 0x10], [13, 1, -1]]);
  assert.equal(sent[3]!.payload!.length, 30);
  assert.equal(sent[3]!.payload![1], 0xee);
  assert.equal(q.stats().heldOutstanding, 1);
  // The held packet gets its verdict later, from JavaScript memory.
  assert.ok(q.release(14, L.V_ACCEPT, 5, Uint8Array.of(1, 2, 3)));
  const last = fake.queue(4).sent.at(-1)!;
  assert.deepEqual([last.id, last.verdict, last.mark, [...last.payload!], last.released], [14, 1, 5, [1, 2, 3], true]);
  const st = q.stats();
  assert.equal(st.heldOutstanding, 0);
  assert.equal(st.received, 5);
  assert.equal(st.meanBatch, 5);
  q.close();
  assert.equal(q.release(15, L.V_ACCEPT), false, 'release after close is refused');
});

test('fake queue: the same Batch object and views every batch (no per-batch allocation)', () => {
  const fake = new FakeBinding();
  const seen: object[] = [];
  const q = NfQueue.open({ queue: 1, batchSize: 4 }, (b) => { seen.push(b, b.slab, b.meta); }, fake);
  fake.queue(1).feed([{ bytes: pkt(1) }]);
  fake.queue(1).feed([{ bytes: pkt(2) }, { bytes: pkt(3) }]);
  assert.equal(seen[0], seen[3]);
  assert.equal(seen[1], seen[4]);
  assert.equal(seen[2], seen[5]);
  assert.equal(q.batch.count, 2);
  q.close();
});

test('fake queue: an unhandled packet gets the default verdict; several queues coexist', () => {
  const fake = new FakeBinding();
  const a = NfQueue.open({ queue: 1, defaultVerdict: L.V_DROP }, () => {}, fake);
  const b = NfQueue.open({ queue: 2 }, () => {}, fake);
  assert.equal(fake.queue(1).feed([{ bytes: pkt(1) }])[0]!.verdict, L.V_DROP);
  assert.equal(fake.queue(2).feed([{ bytes: pkt(1) }])[0]!.verdict, L.V_ACCEPT);
  assert.throws(() => NfQueue.open({ queue: 2 }, () => {}, fake), /queue 2 is already bound/);
  a.close();
  b.close();
});

test('open errors propagate with their message', () => {
  const fake = new FakeBinding();
  fake.failNextOpen = new Error('NFQUEUE queue 3: needs CAP_NET_ADMIN (run as root)');
  assert.throws(() => NfQueue.open({ queue: 3 }, () => {}, fake), /needs CAP_NET_ADMIN/);
});

test('injector: dst from the packet, one cached socket per interface, failures counted not thrown', () => {
  const fake = new FakeBinding();
  const inj = new Injector(fake);
  const p = new Uint8Array(28);
  p.set([0x45, 0, 0, 28], 0);
  p.set([192, 0, 2, 1, 198, 51, 100, 7], 12);
  assert.ok(inj.ip(3, p));
  assert.ok(inj.ip(3, p));
  assert.ok(inj.l2(3, Uint8Array.of(2, 0, 0, 0, 0, 1), p));
  assert.equal(fake.injected.length, 3);
  assert.equal(fake.injected[0]!.dst, 0xc6336407);
  assert.equal(fake.injected[2]!.kind, 'l2');
  fake.missingIfindexes.add(9);
  assert.equal(inj.ip(9, p), false);
  assert.equal(inj.ip(3, new Uint8Array(10)), false);
  assert.equal(inj.l2(3, new Uint8Array(5), p), false);
  assert.deepEqual({ sent: inj.stats().sent, failed: inj.stats().failed }, { sent: 3, failed: 3 });
  assert.match(inj.stats().lastError, /MAC/);
  inj.close();
});

test('fake TUN: accepted packets are written back (rewritten length), others dropped; hook is -1', () => {
  const fake = new FakeBinding();
  const tun = Tun.open({ name: 'tunx', batchSize: 4 }, (b) => {
    assert.equal(b.meta[L.M_HOOK]! | 0, -1);
    setVerdict(b.meta, 0, L.V_ACCEPT, -1, 20);
    setVerdict(b.meta, 1, L.V_DROP);
    setVerdict(b.meta, 2, L.V_HOLD);
  }, fake);
  fake.tuns[0]!.feed([{ bytes: pkt(1) }, { bytes: pkt(2) }, { bytes: pkt(3) }]);
  assert.deepEqual(fake.tuns[0]!.written.map((w) => w.length), [20]);
  assert.equal(tun.release(3, L.V_ACCEPT, -1, null), false, 'no payload: cannot write a held TUN packet');
  assert.ok(tun.release(3, L.V_ACCEPT, -1, pkt(3)));
  assert.equal(tun.stats().releasedWithoutPayload, 1);
  assert.equal(tun.name, 'tunx');
  tun.close();
});
