/**
 * The JavaScript side of one NFQUEUE batch, with `benchmark`, over the fake binding (no kernel):
 * what sluice spends per packet between the addon's call and the verdicts it sends.
 *   node dist/bench/batch-loop.bench.js [--quick]
 * The fake queue is filled once (64 UDP packets of 64 bytes on the wire, one slab, head-room before
 * each) and its batch callback is then invoked directly, as the addon invokes it: the cost of filling
 * the slab (kernel + recvmmsg) and of sending verdicts (sendmsg) is not in these figures; the pps run
 * (bench/run.sh) measures those.
 *   raw accept-all      NfQueue handler writing V_ACCEPT per packet (bench/pps/sluice-raw.ts)
 *   engine, no stages   Engine.handleBatch: classify + default verdict (sluice accept-all)
 */
import Benchmark from 'benchmark';
import { cpus, loadavg } from 'node:os';
import { M_VERDICT, META_STRIDE, V_ACCEPT, type Batch } from '../src/io/batch-layout';
import { FakeBinding, type FakeQueue } from '../src/io/fake';
import { Interfaces } from '../src/io/interfaces';
import { NfQueue } from '../src/io/nfqueue';
import { Engine } from '../src/engine/engine';

const quick = process.argv.includes('--quick');
const BATCH = 64;

/** IPv4/UDP 10.1.0.2:40000 → 10.2.0.2:9, 22 bytes of payload (a 64-byte Ethernet frame). */
function udp64(): Uint8Array {
  const b = new Uint8Array(50);
  b.set([0x45, 0, 0, 50, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 2, 10, 2, 0, 2]);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  b[10] = (~s >> 8) & 255; b[11] = ~s & 255;
  b.set([40000 >> 8, 40000 & 255, 0, 9, 0, 30, 0, 0], 20);
  b.fill(0x41, 28);
  return b;
}

/** Opens a fake queue with `handler`, feeds one batch to lay out slab + meta, returns a re-run. */
function prepare(handler: (b: Batch) => void): () => void {
  const fake = new FakeBinding();
  let run = false;
  const q = NfQueue.open({ queue: 1, batchSize: BATCH }, (b) => { if (run) handler(b); }, fake);
  const fq: FakeQueue = fake.queue(1);
  fq.feed(Array.from({ length: BATCH }, () => ({ bytes: udp64(), indev: 2, outdev: 3 })));
  run = true;
  const batch = q.batch as { count: number };
  batch.count = BATCH;
  return () => handler(q.batch);
}

const rawAccept = prepare((b) => {
  const m = b.meta;
  for (let i = 0, base = M_VERDICT; i < b.count; i++, base += META_STRIDE) m[base] = V_ACCEPT;
});

const engine = new Engine({ held: { max: 1024, timeoutMs: 1000, defaultVerdict: 'accept' }, interfaces: Interfaces.fromList([]) });
const src = engine.addSource({ release: () => {} }, 1, { defaultVerdict: 'accept', onInvalid: 'accept' });
engine.setPipeline([]);
const engineBatch = prepare((b) => engine.handleBatch(src, b));

const suite = new Benchmark.Suite();
const opts = quick ? { maxTime: 0.5, minSamples: 5 } : { maxTime: 3 };
suite
  .add(`raw accept-all, batch of ${BATCH}`, rawAccept, opts)
  .add(`engine, no stages, batch of ${BATCH}`, engineBatch, opts)
  .on('cycle', (e: Benchmark.Event) => {
    const t = e.target as Benchmark.Target & { hz: number; stats: { rme: number } };
    const nsPerPacket = 1e9 / t.hz / BATCH;
    process.stdout.write(`${String(t.name).padEnd(34)} ${(t.hz * BATCH / 1e6).toFixed(1).padStart(7)} Mpps in JS  ` +
      `${nsPerPacket.toFixed(1).padStart(6)} ns/packet  ±${t.stats.rme.toFixed(1)}%\n`);
  })
  .on('complete', () => {
    process.stdout.write(`# ${cpus()[0]?.model ?? 'cpu'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
    engine.close().catch(() => {});
  })
  .run();
