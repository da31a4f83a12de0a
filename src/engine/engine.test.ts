/**
 * The batch loop with an in-memory batch (no kernel): verdict encoding, marks, rewrites, holds,
 * releases, timeouts, caps, stage errors and invalid packets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  M_CAPACITY, M_ID, M_LENGTH, M_MARK, M_NEW_LENGTH, M_OFFSET, M_ORIG_LENGTH, M_OUT_FLAGS, M_VERDICT, M_VMARK, META_STRIDE,
  M_SKB_FLAGS, OUT_REWRITTEN, OUT_SET_MARK, SKB_CSUM_NOTREADY, V_ACCEPT, V_DROP, V_HOLD, type Batch,
} from '../io/batch-layout';
import { UdpPacket } from '../packet/udp';
import { Interfaces } from '../io/interfaces';
import { Engine } from './engine';
import type { VerdictSink } from './sources';
import { Verdict, type Decision, type PacketContext, type Stage, type StageServices } from './stage';

const SLOT = 2048;

/** An IPv4/UDP packet 10.0.0.1:1000 → 10.0.0.2:dport with a valid header checksum. */
function udp(dport: number, payload = 8): Uint8Array {
  const len = 28 + payload;
  const b = new Uint8Array(len);
  b.set([0x45, 0, len >> 8, len & 255, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const ck = ~sum & 0xffff;
  b[10] = ck >> 8; b[11] = ck & 255;
  b.set([1000 >> 8, 1000 & 255, dport >> 8, dport & 255, 0, 8 + payload, 0, 0], 20);
  return b;
}

function batchOf(packets: Uint8Array[], marks: number[] = []): Batch {
  const slab = new Uint8Array(SLOT * packets.length);
  const meta = new Uint32Array(META_STRIDE * packets.length);
  packets.forEach((p, i) => {
    const off = i * SLOT + 64;
    slab.set(p, off);
    const b = i * META_STRIDE;
    meta[b + M_ID] = 100 + i;
    meta[b + M_OFFSET] = off;
    meta[b + M_LENGTH] = p.length;
    meta[b + M_CAPACITY] = SLOT - 64;
    meta[b + M_MARK] = marks[i] ?? 0;
  });
  return { slab, meta, count: packets.length };
}

class Sink implements VerdictSink {
  released: { id: number; verdict: number; mark: number; payload: Uint8Array | null }[] = [];
  release(id: number, verdict: number, mark: number, payload: Uint8Array | null): void {
    this.released.push({ id, verdict, mark, payload: payload && payload.slice() });
  }
}

function setup(stages: Stage[], held = { max: 10, timeoutMs: 50, defaultVerdict: 'accept' as const }) {
  const engine = new Engine({ held, interfaces: Interfaces.fromList([]) });
  const sink = new Sink();
  const src = engine.addSource(sink, 7, { defaultVerdict: 'accept', onInvalid: 'drop' });
  engine.setPipeline(stages);
  return { engine, sink, src };
}

const byPort = (name: string, act: (p: PacketContext, d: Decision, s: StageServices) => void, failure: 'open' | 'closed' = 'open'): Stage & { s?: StageServices } => {
  const st: Stage & { s?: StageServices } = {
    name, failure,
    init(s) { st.s = s; },
    process(p, d) { act(p, d, st.s!); },
  };
  return st;
};

const verdicts = (b: Batch) => Array.from({ length: b.count }, (_, i) => b.meta[i * META_STRIDE + M_VERDICT]);

test('no stages: every packet gets the default verdict, no flags', async () => {
  const { engine, src } = setup([]);
  const b = batchOf([udp(1), udp(2)]);
  engine.handleBatch(src, b);
  assert.deepEqual(verdicts(b), [V_ACCEPT, V_ACCEPT]);
  assert.equal(b.meta[M_OUT_FLAGS], 0);
  assert.equal(engine.counters.get('engine.packets'), 2);
  await engine.close();
});

test('first deciding stage wins; drop reasons are counted by name', async () => {
  let later = 0;
  const first = byPort('first', (p, d, s) => {
    if (p.info.dport === 53) d.drop(s.reason('first.dns', 'no DNS'));
  });
  const second = byPort('second', (_p, d) => { later++; d.accept(); });
  const { engine, src } = setup([first, second]);
  const b = batchOf([udp(53), udp(80), udp(53)]);
  engine.handleBatch(src, b);
  assert.deepEqual(verdicts(b), [V_DROP, V_ACCEPT, V_DROP]);
  assert.equal(later, 1);
  assert.equal(engine.counters.get('first.dns'), 2);
  assert.equal(engine.stageCounts().second!.accept, 1);
  await engine.close();
});

test('marks use --set-xmark semantics and later stages see the new mark', async () => {
  let seen = -1;
  const a = byPort('a', (_p, d) => d.setMark(0x10, 0xff));
  const b2 = byPort('b', (p) => { seen = p.mark; });
  const { engine, src } = setup([a, b2]);
  const b = batchOf([udp(1)], [0x1234]);
  engine.handleBatch(src, b);
  assert.equal(seen, 0x1210);
  assert.equal(b.meta[M_OUT_FLAGS]! & OUT_SET_MARK, OUT_SET_MARK);
  assert.equal(b.meta[M_VMARK], 0x1210);
  await engine.close();
});

test('a rewrite sets the flag and the new length', async () => {
  const { engine, src } = setup([byPort('rw', (p, d) => { p.bytes[p.offset + 28] = 0xab; p.length -= 2; d.rewritten = true; })]);
  const b = batchOf([udp(1)]);
  engine.handleBatch(src, b);
  assert.equal(b.meta[M_OUT_FLAGS]! & OUT_REWRITTEN, OUT_REWRITTEN);
  assert.equal(b.meta[M_NEW_LENGTH], 34);
  assert.equal(b.slab[64 + 28], 0xab);
  await engine.close();
});

test('a held packet is copied, leaves the batch, and is re-run from its stage on release', async () => {
  let handle = -1;
  let runsOfFirst = 0;
  const first = byPort('first', () => { runsOfFirst++; });
  const holder = byPort('holder', (p, d, s) => {
    if (handle < 0) {
      handle = s.hold(10000);
      d.verdict = Verdict.HOLD;
    } else {
      p.bytes[p.offset + 28] = 0x77;
      d.rewritten = true;
      d.setMark(5);
      d.accept();
    }
  });
  const { engine, sink, src } = setup([first, holder]);
  const b = batchOf([udp(9)]);
  engine.handleBatch(src, b);
  assert.equal(b.meta[M_VERDICT], V_HOLD);
  b.slab.fill(0); // the slab is reused by the next batch
  assert.equal(engine.held.size, 1);
  holder.s!.release(handle);
  assert.equal(sink.released.length, 1);
  const r = sink.released[0]!;
  assert.equal(r.id, 100);
  assert.equal(r.verdict, V_ACCEPT);
  assert.equal(r.mark, 5);
  assert.equal(r.payload!.length, 36);
  assert.equal(r.payload![28], 0x77);
  assert.equal(r.payload![9], 17, 'the copy kept the original bytes');
  assert.equal(runsOfFirst, 1, 'release resumes at the holding stage');
  await engine.close();
});

test('a hold past its timeout gets the default verdict and the stage hears of it', async () => {
  const expired: number[] = [];
  const st: Stage & { s?: StageServices } = {
    name: 'h', failure: 'open', init(s) { st.s = s; },
    process(_p, d) { st.s!.hold(30); d.verdict = Verdict.HOLD; },
    onHoldExpired(h) { expired.push(h); },
  };
  const { engine, sink, src } = setup([st]);
  engine.handleBatch(src, batchOf([udp(1)]));
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(sink.released.length, 1);
  assert.equal(sink.released[0]!.verdict, V_ACCEPT);
  assert.equal(sink.released[0]!.payload, null);
  assert.equal(expired.length, 1);
  assert.equal(engine.counters.get('engine.held_expired'), 1);
  await engine.close();
});

test('the hold cap refuses with -1 and counts it', async () => {
  const results: number[] = [];
  const st: Stage & { s?: StageServices } = {
    name: 'h', failure: 'open', init(s) { st.s = s; },
    process(_p, d) {
      const h = st.s!.hold();
      results.push(h);
      if (h < 0) d.drop(0); else d.verdict = Verdict.HOLD;
    },
  };
  const { engine, src } = setup([st], { max: 2, timeoutMs: 10000, defaultVerdict: 'accept' });
  const b = batchOf([udp(1), udp(2), udp(3)]);
  engine.handleBatch(src, b);
  assert.deepEqual(verdicts(b), [V_HOLD, V_HOLD, V_DROP]);
  assert.equal(results[2], -1);
  assert.equal(engine.counters.get('engine.held_cap'), 1);
  await engine.close();
});

test('releases asked for during a batch run after it', async () => {
  let held = -1;
  const st: Stage & { s?: StageServices } = {
    name: 'h', failure: 'open', init(s) { st.s = s; },
    process(p, d) {
      if (p.info.dport === 1) { held = st.s!.hold(); d.verdict = Verdict.HOLD; return; }
      if (held >= 0 && p.info.dport === 2) { st.s!.releaseWith(held, Verdict.DROP); held = -1; }
      d.accept();
    },
  };
  const { engine, sink, src } = setup([st]);
  const b = batchOf([udp(1), udp(2), udp(3)]);
  engine.handleBatch(src, b);
  assert.deepEqual(verdicts(b), [V_HOLD, V_ACCEPT, V_ACCEPT]);
  assert.deepEqual(sink.released.map((r) => [r.id, r.verdict]), [[100, V_DROP]]);
  await engine.close();
});

test('close gives every held packet the default verdict', async () => {
  const st: Stage & { s?: StageServices } = { name: 'h', failure: 'open', init(s) { st.s = s; }, process(_p, d) { st.s!.hold(60000); d.verdict = Verdict.HOLD; } };
  const { engine, sink, src } = setup([st]);
  engine.handleBatch(src, batchOf([udp(1), udp(2)]));
  await engine.close();
  assert.deepEqual(sink.released.map((r) => r.id).sort(), [100, 101]);
});

test('a throwing stage costs one packet its default verdict, not the batch', async () => {
  const { engine, src } = setup([byPort('bad', (p, d) => { if (p.info.dport === 2) throw new Error('bug'); d.drop(0); })]);
  const b = batchOf([udp(1), udp(2), udp(3)]);
  engine.handleBatch(src, b);
  assert.deepEqual(verdicts(b), [V_DROP, V_ACCEPT, V_DROP]);
  assert.equal(engine.counters.get('engine.stage_error'), 1);
  await engine.close();
});

test('unreadable packets skip the stages and get on_invalid, counted per reason', async () => {
  let calls = 0;
  const { engine, src } = setup([byPort('s', (_p, d) => { calls++; d.accept(); })]);
  const garbage = new Uint8Array([0x45, 0, 0, 99, 1, 2]);
  const b = batchOf([garbage, udp(1), new Uint8Array(0)]);
  engine.handleBatch(src, b);
  assert.deepEqual(verdicts(b), [V_DROP, V_ACCEPT, V_DROP]);
  assert.equal(calls, 1);
  const invalid = engine.counters.snapshot().filter((c) => c.name.startsWith('engine.invalid.'));
  assert.equal(invalid.reduce((s, c) => s + c.value, 0), 2);
  await engine.close();
});

test('a rewrite of a checksum-not-ready packet gets a complete UDP checksum', async () => {
  const { engine, src } = setup([byPort('rw', (p, d) => { p.bytes[p.offset + 28] = 0x41; d.rewritten = true; d.accept(); })]);
  const pkt = udp(5, 8);
  // CHECKSUM_PARTIAL: the field holds only the folded pseudo-header sum, not a checksum.
  pkt[26] = 0x12; pkt[27] = 0x34;
  const b = batchOf([pkt, udp(6, 8)]);
  b.meta[0 * META_STRIDE + M_SKB_FLAGS] = SKB_CSUM_NOTREADY;
  engine.handleBatch(src, b);
  const first = b.slab.subarray(64, 64 + 36);
  const second = b.slab.subarray(SLOT + 64, SLOT + 64 + 36);
  assert.ok(new UdpPacket(first, 20, 16).verifyChecksum4(0x0a000001, 0x0a000002), 'full checksum computed');
  assert.notEqual((first[26]! << 8) | first[27]!, 0);
  assert.equal((second[26]! << 8) | second[27]!, 0, 'a ready packet keeps its (zero) checksum');
  await engine.close();
});

test('a fail-closed stage that throws drops the packet; counted per stage, logged rate-limited with the packet summary', async () => {
  const logs: { obj: Record<string, unknown>; msg: string }[] = [];
  const engine = new Engine({ held: { max: 10, timeoutMs: 50, defaultVerdict: 'accept' }, interfaces: Interfaces.fromList([]),
    log: { warn: () => {}, error: (obj, msg) => logs.push({ obj: obj as Record<string, unknown>, msg }) } });
  const src = engine.addSource(new Sink(), 7, { defaultVerdict: 'accept', onInvalid: 'drop' });
  let after = 0;
  engine.setPipeline([
    byPort('pol', (p, d) => { if (p.info.dport !== 1) throw new Error('bug'); d.setMark(1); }, 'closed'),
    byPort('next', () => { after++; }),
  ]);
  const b = batchOf([udp(2), udp(1), udp(3)]);
  engine.handleBatch(src, b);
  assert.deepEqual(verdicts(b), [V_DROP, V_ACCEPT, V_DROP], 'a bug in a fail-closed stage never passes what it would discard');
  assert.equal(after, 1, 'no later stage sees a packet its fail-closed stage threw on');
  assert.equal(engine.counters.get('engine.stage_error.pol'), 2);
  assert.equal(engine.counters.get('engine.dropped'), 2);
  assert.equal(logs.length, 1, 'logged at most once a second per stage');
  assert.equal(logs[0]!.obj.stage, 'pol');
  assert.deepEqual((logs[0]!.obj.packet as { udp?: { dport?: number } }).udp?.dport, 2, `the packet's decode summary: ${JSON.stringify(logs[0]!.obj.packet)}`);
  await engine.close();
});

test('a fail-open stage that throws passes the packet on with its own mark, rewrite and hold undone', async () => {
  let seenMark = -1;
  const thrower = byPort('steerish', (p, d, s) => {
    d.setMark(0x40);
    d.rewritten = true;
    p.length -= 1;
    s.hold(1000);
    throw new Error('bug');
  }, 'open');
  const { engine, src } = setup([byPort('first', (_p, d) => d.setMark(0x2, 0xf)), thrower,
    byPort('last', (p, d) => { seenMark = p.mark; d.accept(); })]);
  const b = batchOf([udp(5)]);
  engine.handleBatch(src, b);
  assert.deepEqual(verdicts(b), [V_ACCEPT]);
  assert.equal(seenMark, 0x2, 'the first stage\'s mark kept, the thrower\'s undone');
  assert.equal(b.meta[M_OUT_FLAGS]! & OUT_REWRITTEN, 0);
  assert.equal(b.meta[M_VMARK], 0x2);
  assert.equal(engine.held.size, 0, 'the thrower\'s hold taken back');
  assert.equal(engine.counters.get('engine.stage_error.steerish'), 1);
  await engine.close();
});

test('held packets of a fail-closed stage are dropped on timeout and at shutdown; a fail-open stage\'s get held.default_verdict', async () => {
  const holder = (name: string, failure: 'open' | 'closed', ms: number) => byPort(name, (p, d, s) => {
    if (p.info.dport === (failure === 'closed' ? 1 : 2)) { s.hold(ms); d.verdict = Verdict.HOLD; }
  }, failure);
  for (const ms of [30, 60000]) {
    const { engine, sink, src } = setup([holder('nat', 'closed', ms), holder('other', 'open', ms)]);
    engine.handleBatch(src, batchOf([udp(1), udp(2)]));
    if (ms === 30) await new Promise((r) => setTimeout(r, 120));
    await engine.close();
    assert.deepEqual(sink.released.map((r) => [r.id, r.verdict]).sort(), [[100, V_DROP], [101, V_ACCEPT]],
      ms === 30 ? 'timeout' : 'shutdown');
  }
});

test('after a reload a held packet resumes in the stage that held it, or gets that stage\'s timeout verdict', async () => {
  let handle = -1;
  const decisions: string[] = [];
  const holder = byPort('nat', (_p, d, s) => {
    if (handle < 0) { handle = s.hold(60000); d.verdict = Verdict.HOLD; return; }
    decisions.push('nat'); d.accept();
  }, 'closed');
  const other = byPort('policy', (_p, d) => { decisions.push('policy'); d.drop(0); }, 'closed');
  const { engine, sink, src } = setup([holder]);
  engine.handleBatch(src, batchOf([udp(1)]));
  engine.setPipeline([other, holder]); // the holder moved from index 0 to 1
  holder.s!.release(handle);
  assert.deepEqual(decisions, ['nat'], 'resumed in the holding stage, not in the stage now at its old index');
  assert.deepEqual(sink.released.map((r) => r.verdict), [V_ACCEPT]);
  // A reload that removes the holder: its timeout verdict (closed: drop) at once.
  handle = -1;
  engine.setPipeline([holder]);
  engine.handleBatch(src, batchOf([udp(1)]));
  engine.setPipeline([other]);
  assert.equal(engine.held.size, 0);
  assert.deepEqual(sink.released.map((r) => r.verdict), [V_ACCEPT, V_DROP]);
  assert.equal(engine.counters.get('engine.held_orphaned'), 1);
  assert.deepEqual(decisions, ['nat'], 'no other stage decided it');
  await engine.close();
});

test('a truncated packet (copy_range) is decided on the headers present; a rewrite of it is dropped, never cut short', async () => {
  const seen: { truncated: boolean; l4: number; dport: number }[] = [];
  const { engine, src } = setup([byPort('s', (p, d) => {
    seen.push({ truncated: p.info.truncated, l4: p.info.l4Length, dport: p.info.dport });
    if (p.info.dport === 9) { p.bytes[p.offset + 28] = 1; d.rewritten = true; }
    d.accept();
  })]);
  const full = udp(8, 1372);
  const cut = (pk: Uint8Array) => pk.subarray(0, 128);
  const b = batchOf([cut(full), cut(udp(9, 1372))]);
  for (let i = 0; i < 2; i++) b.meta[i * META_STRIDE + M_ORIG_LENGTH] = 1400;
  engine.handleBatch(src, b);
  assert.deepEqual(seen, [{ truncated: true, l4: 108, dport: 8 }, { truncated: true, l4: 108, dport: 9 }]);
  assert.deepEqual(verdicts(b), [V_ACCEPT, V_DROP]);
  assert.equal(b.meta[M_OUT_FLAGS]! & OUT_REWRITTEN, 0, 'no rewritten payload sent for the accepted one');
  assert.equal(engine.counters.get('engine.truncated_rewrite'), 1);
  // Without the source saying it truncated, the same bytes are a broken packet.
  const bad = batchOf([cut(full)]);
  engine.handleBatch(src, bad);
  assert.deepEqual(verdicts(bad), [V_DROP]);
  assert.equal(engine.counters.get('engine.invalid.truncated'), 1);
  await engine.close();
});

test('batchStart/batchEnd wrap every batch, with the releases and ticks it runs inside; batchEnd also after a throw', async () => {
  const calls: string[] = [];
  let held = -1;
  const st: Stage & { s?: StageServices } = {
    name: 'w', failure: 'open', tickMs: 0, init(s) { st.s = s; },
    batchStart() { calls.push('start'); },
    batchEnd() { calls.push('end'); },
    tick() { calls.push('tick'); },
    process(p, d) {
      calls.push(`p${p.info.dport}`);
      if (p.info.dport === 1) { held = st.s!.hold(); d.verdict = Verdict.HOLD; return; }
      if (p.info.dport === 2 && held >= 0) { st.s!.release(held); held = -1; }
      if (p.info.dport === 9) throw new Error('boom');
      d.accept();
    },
  };
  const { engine, src } = setup([st]);
  engine.handleBatch(src, batchOf([udp(1), udp(2)]));
  // The held packet's re-run (p1 again, after the batch's packets) and the tick come before the end.
  assert.deepEqual(calls, ['start', 'p1', 'p2', 'p1', 'tick', 'end']);
  calls.length = 0;
  engine.handleBatch(src, batchOf([udp(9)]));
  assert.deepEqual(calls.filter((c) => c !== 'tick'), ['start', 'p9', 'end']);
  await engine.close();
});
