/**
 * The tracer over real engine batches from the fake binding: attach/detach (zero cost when nobody
 * traces), per-stage steps with explain(), verdict/mark/rewrite read back, filters, --count, and
 * the bound on a slow subscriber (records not taken are counted as dropped, never queued).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from './engine';
import { Verdict, type Decision, type PacketContext, type Stage } from './stage';
import { Tracer, traceChunks } from './trace';
import { compileFilter, FilterError, parseFilterText } from './trace-filter';
import { FakeBinding } from '../io/fake';
import { Interfaces } from '../io/interfaces';
import { NfQueue } from '../io/nfqueue';
import { V_ACCEPT, V_DROP } from '../io/batch-layout';
import { traceJson, formatTraceLine } from '../obs/trace-format';

/** IPv4/UDP 10.0.0.1:1000 → 10.0.0.2:dport (header checksum left 0: the stages do not care). */
function udp(dport: number, src = [10, 0, 0, 1]): Uint8Array {
  const b = new Uint8Array(36);
  b.set([0x45, 0, 0, 36, 0, 1, 0, 0, 64, 17, 0, 0, ...src, 10, 0, 0, 2]);
  b.set([1000 >> 8, 1000 & 255, dport >> 8, dport & 255, 0, 16, 0, 0], 20);
  return b;
}

const ifs = Interfaces.fromList([{ name: 'lan0', index: 3, ipv4: 0, prefixLength: 0, addresses: [], mac: new Uint8Array(6) }]);

/** marks port 5000, drops port 22, rewrites port 4600's source to 192.0.2.9; explains with the port. */
class PortStage implements Stage {
  readonly name = 'ports';
  readonly failure = 'open';
  drop = 0;
  init(s: { reason(n: string, h: string): number }): void { this.drop = s.reason('ports.ssh', 'test'); }
  explain(p: PacketContext): Record<string, unknown> { return { port: p.info.dport }; }
  process(p: PacketContext, d: Decision): void {
    const port = p.info.dport;
    if (port === 5000) d.setMark(0x10, 0xff);
    else if (port === 22) d.drop(this.drop);
    else if (port === 4600) { p.bytes.set([192, 0, 2, 9], p.offset + 12); d.rewritten = true; d.accept(); }
    else if (port === 99) throw new Error('boom');
  }
}

class Last implements Stage {
  readonly name = 'last';
  readonly failure = 'closed';
  process(_p: PacketContext, d: Decision): void { d.verdict = Verdict.ACCEPT; }
}

function setup() {
  const fake = new FakeBinding();
  const engine = new Engine({ held: { max: 10, timeoutMs: 100, defaultVerdict: 'accept' }, interfaces: ifs });
  engine.setPipeline([new PortStage(), new Last()]);
  let src = -1;
  const q = NfQueue.open({ queue: 4, defaultVerdict: V_ACCEPT }, (b) => engine.handleBatch(src, b), fake);
  src = engine.addSource(q, 4, { defaultVerdict: 'accept', onInvalid: 'drop' });
  const tracer = new Tracer(engine);
  const names = { ifname: (i: number) => ifs.nameOf(i), reason: (id: number) => engine.counters.info(id)?.name ?? '?' };
  return { fake, engine, tracer, names, feed: (pk: Uint8Array[], indev = 3) => fake.queue(4).feed(pk.map((bytes) => ({ bytes, indev }))) };
}

test('nobody traces: the engine has no tracer; the first subscriber attaches it, the last one detaches it', () => {
  const { engine, tracer } = setup();
  assert.equal(engine.tracer, null);
  const a = tracer.subscribe(null);
  const b = tracer.subscribe(null);
  assert.equal(engine.tracer, tracer);
  tracer.unsubscribe(a);
  assert.equal(engine.tracer, tracer);
  tracer.unsubscribe(b);
  assert.equal(engine.tracer, null);
});

test('each stage that looked: explain, decision, mark; then verdict, mark and rewrite as sent', () => {
  const { tracer, names, feed } = setup();
  const sub = tracer.subscribe(null);
  const sent = feed([udp(5000), udp(22), udp(4600), udp(7)]);
  assert.deepEqual(sent.map((s) => s.verdict), [V_ACCEPT, V_DROP, V_ACCEPT, V_ACCEPT], 'tracing changes no verdict');
  const lines = sub.records.map((r) => traceJson(r, names));
  assert.equal(lines.length, 4);
  assert.equal(lines[0]!.in, 'lan0');
  assert.equal(lines[0]!.hook, 'forward');
  assert.equal(lines[0]!.packet, 'udp 10.0.0.1:1000 > 10.0.0.2:5000');
  assert.deepEqual(lines[0]!.stages, [
    { stage: 'ports', decision: 'continue', mark: '0x10/0xff', explain: { port: 5000 } },
    { stage: 'last', decision: 'accept', mark: '0x10/0xff' },
  ]);
  assert.equal(lines[0]!.verdict, 'accept');
  assert.equal(lines[0]!.mark_out, '0x10');
  assert.equal(lines[1]!.verdict, 'drop');
  assert.equal(lines[1]!.reason, 'ports.ssh');
  assert.equal(lines[1]!.stages.length, 1, 'the stages after a drop never looked');
  assert.deepEqual(lines[2]!.rewrite, { packet: 'udp 192.0.2.9:1000 > 10.0.0.2:4600', changed: ['src 10.0.0.1→192.0.2.9'] });
  assert.equal(lines[2]!.packet, 'udp 10.0.0.1:1000 > 10.0.0.2:4600', 'the packet as it arrived');
  assert.match(formatTraceLine(lines[1]!), /^\d\d:\d\d:\d\d\.\d{3} q4 forward lan0>- udp 10\.0\.0\.1:1000 > 10\.0\.0\.2:22 \| ports: port=22 → drop\(ports\.ssh\) \| drop\(ports\.ssh\)$/);
  assert.match(formatTraceLine(lines[2]!), /\| accept rewrite src 10\.0\.0\.1→192\.0\.2\.9$/);
});

test('a stage that throws shows as threw on its line, and the engine still fails it open', () => {
  const { tracer, names, feed } = setup();
  const sub = tracer.subscribe(null);
  assert.equal(feed([udp(99)])[0]!.verdict, V_ACCEPT);
  const l = traceJson(sub.records[0]!, names);
  assert.deepEqual(l.stages.map((s) => [s.stage, s.decision, s.error]), [['ports', 'threw', 'boom'], ['last', 'accept', undefined]]);
});

test('a filter or an explain() that throws changes no verdict: counted as not traced / shown on the line', () => {
  const { tracer, feed, names, engine } = setup();
  const bad = tracer.subscribe(() => { throw new Error('filter bug'); });
  assert.deepEqual(feed([udp(22), udp(7)]).map((s) => s.verdict), [V_DROP, V_ACCEPT]);
  assert.equal(bad.dropped, 2);
  tracer.unsubscribe(bad);
  const st = engine.pipeline[0] as PortStage;
  st.explain = () => { throw new Error('explain bug'); };
  const sub = tracer.subscribe(null);
  assert.deepEqual(feed([udp(22)]).map((s) => s.verdict), [V_DROP]);
  assert.deepEqual(traceJson(sub.records[0]!, names).stages[0]!.explain, { explain_error: 'explain bug' });
});

test('filter and count: only matching packets, and no more than count', () => {
  const { tracer, feed, engine } = setup();
  const f = compileFilter('dport=5000,4600 in=lan0', ifs);
  const sub = tracer.subscribe(f.filter, { count: 2 });
  feed([udp(22), udp(5000), udp(7), udp(4600), udp(5000)]);
  assert.deepEqual(sub.records.map((r) => r.bytes[23]), [5000 & 255, 4600 & 255]);
  assert.ok(sub.complete);
  const other = compileFilter('in=eth9', ifs);
  const none = tracer.subscribe(other.filter);
  feed([udp(5000)]);
  assert.equal(none.records.length, 0, 'in=eth9 matches nothing arriving on lan0');
  tracer.unsubscribe(sub);
  tracer.unsubscribe(none);
  assert.equal(engine.tracer, null);
});

test('a slow subscriber: its queue stays at max, the rest is counted as dropped, the engine is not held up', () => {
  const { tracer, feed } = setup();
  const sub = tracer.subscribe(null, { max: 3 });
  for (let i = 0; i < 10; i++) feed([udp(1), udp(2)]);
  assert.equal(sub.records.length, 3);
  assert.equal(sub.dropped, 17);
  assert.equal(sub.take(10).length, 3);
  feed([udp(3)]);
  assert.equal(sub.records.length, 1, 'room again: tracing resumes');
});

test('traceChunks streams records, heartbeats while idle, ends after count and unsubscribes', async () => {
  const { tracer, feed, engine, names } = setup();
  const sub = tracer.subscribe(null, { count: 2 });
  const it = traceChunks(tracer, sub, (r) => traceJson(r, names), () => {}, 20);
  const idle = await it.next();
  assert.deepEqual(idle.value, { packets: [], dropped: 0 }, 'a heartbeat when nothing arrives');
  feed([udp(5000), udp(501), udp(502)]);
  const c = await it.next();
  assert.equal((c.value as { packets: unknown[] }).packets.length, 2);
  assert.equal((c.value as { done?: boolean }).done, true);
  assert.equal((await it.next()).done, true);
  assert.equal(engine.tracer, null, 'the finished stream unsubscribed');
});

test('filter syntax: selector fields as words; clear errors', () => {
  assert.deepEqual(parseFilterText('proto=esp dst=203.0.113.0/24 !dport=22 not.src=10.0.0.0/8'),
    { proto: 'esp', dst: '203.0.113.0/24', not: { dport: 22, src: '10.0.0.0/8' } });
  assert.deepEqual(parseFilterText('dport=500,4500 kind=ike'), { dport: [500, 4500], kind: 'ike' });
  assert.throws(() => parseFilterText('esp'), FilterError);
  assert.throws(() => parseFilterText('proto=bogus'), /proto/);
  assert.throws(() => parseFilterText('color=red'), /filter/);
  assert.throws(() => parseFilterText('src=@vpn'), /named sets/);
  assert.throws(() => parseFilterText('dport=1 dport=2'), /given twice/);
});

test('over the control socket: a client that stops reading costs a bounded queue; the gap is counted and reported', async () => {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { createConnection } = await import('node:net');
  const { startControlServer } = await import('../control/server');
  const { serveTrace } = await import('../cli/trace-serve');
  const { engine, tracer, feed } = setup();
  const path = join(mkdtempSync(join(tmpdir(), 'sluice-trace-')), 's.sock');
  const server = await startControlServer(path, (req) => serveTrace(engine, tracer, ifs, req.args ?? {}));
  const c = createConnection(path);
  try {
    let text = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => { text += d; });
    await new Promise<void>((r) => c.once('connect', () => r()));
    c.write(`${JSON.stringify({ cmd: 'trace', args: { max: 50, filter: 'dport=5000' } })}\n`);
    await new Promise((r) => setTimeout(r, 100));
    c.pause(); // stops reading: the socket buffers fill, then the engine's queue (50), then packets are only counted
    const big = udp(5000);
    for (let i = 0; i < 400; i++) { feed(Array.from({ length: 50 }, () => big)); if (i % 50 === 0) await new Promise((r) => setImmediate(r)); }
    assert.ok(tracer.subscribers === 1);
    c.resume();
    await new Promise((r) => setTimeout(r, 1500));
    const chunks = text.trim().split('\n').slice(1).map((l) => JSON.parse(l) as { chunk: { packets: unknown[]; dropped: number } });
    const got = chunks.reduce((n, ch) => n + ch.chunk.packets.length, 0);
    const dropped = chunks[chunks.length - 1]!.chunk.dropped;
    assert.equal(got + dropped, 20000, `every matching packet is either delivered (${got}) or counted as not traced (${dropped})`);
    assert.ok(dropped > 10000, `most were not traced while the client did not read (dropped ${dropped})`);
  } finally {
    c.destroy();
    await server.close();
  }
  await new Promise((r) => setTimeout(r, 1100)); // the stream notices the client is gone at its next heartbeat
  assert.equal(engine.tracer, null, 'the subscription ended with the client');
});
