/**
 * `sluice trace` with workers: 2, in one thread on the fake binding: two WorkerCores (queues 5 and
 * 6) trace their own batches and post records (structured-cloned, as postMessage does) to the main
 * side, whose engine is the NAT owner and traces the packets the workers forward; serveTrace()
 * merges them into one stream with one set of bounds (max, count, missed) for all threads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../config/schema';
import { Engine } from '../engine/engine';
import { HOOK_POSTROUTING, HOOK_PREROUTING } from '../engine/stage';
import { Tracer, type TraceSubscriber } from '../engine/trace';
import { Interfaces } from '../io/interfaces';
import { NatStage } from '../nat/stage';
import { createLogger } from '../obs/log';
import { formatTraceLine, type TraceLineJson } from '../obs/trace-format';
import { serveTrace } from './trace-serve';
import type { TraceFanout } from './trace-workers';
import { fakeWorkers } from '../../test/kit/fake-workers';
import { ip, ike, esp, udpPacket, IKE_SA_INIT } from '../../test/kit/nat';

const PUB = ip('203.0.113.1');
const S = ip('198.51.100.10');
const H = ip('10.0.0.11');
const hop = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Chunk = { packets: TraceLineJson[]; dropped: number; done?: true };

function setup() {
  const cfg = configSchema.parse({
    workers: 2,
    queues: [{ num: 5, fail_open: false }],
    nat: { public: ['203.0.113.1'], wan_interface: 'wan0', servers: ['198.51.100.0/24'], queue: 5, journal: { path: null } },
  });
  const log = createLogger('silent');
  const interfaces = Interfaces.fromList([]);
  const owner = new Engine({ held: { max: 100, timeoutMs: 5000, defaultVerdict: 'accept' }, interfaces });
  const nat = new NatStage(cfg.nat!, { shared: true });
  owner.setPipeline([nat]);
  const ownerTracer = new Tracer(owner, 'owner');
  const sinks = new Map<number, TraceSubscriber>();
  let posted = 0;
  // The thread boundary for records: an event-loop hop and a structured clone.
  const { cores, fakes } = fakeWorkers(2, cfg, owner, nat, log, interfaces, (m) => {
    if (m.t !== 'traced') return;
    posted += m.recs.length;
    const c = structuredClone(m);
    setTimeout(() => { const s = sinks.get(c.sub); if (s) for (const r of c.recs) s.push(r); }, 1);
  });
  let next = 1;
  const fanout: TraceFanout = {
    async trace(sub, filter) {
      const id = next++;
      sinks.set(id, sub);
      const start = structuredClone({ sub: id, filter, max: sub.max, count: sub.count, state: sub.state });
      for (const c of cores) c.traces.start(start);
      return () => { sinks.delete(id); for (const c of cores) c.traces.stop(id); };
    },
  };
  const trace = async (args: Record<string, unknown>) =>
    (await serveTrace(owner, ownerTracer, interfaces, args, fanout))[Symbol.asyncIterator]() as AsyncIterator<Chunk>;
  const feed = (w: number, bytes: Uint8Array, hook: number, n = 1) =>
    fakes[w]!.queue(5 + w).feed(Array.from({ length: n }, () => ({ bytes, hook })));
  const close = async (): Promise<void> => { for (const c of cores) await c.close(); await owner.close(); };
  return { owner, ownerTracer, cores, trace, feed, close, posted: () => posted };
}

test('workers: 2: nobody traces, no worker has a tracer; a trace attaches one in every worker and the owner, its end detaches them', async () => {
  const { owner, cores, trace, feed, posted, close } = setup();
  assert.ok(cores.every((c) => c.engine.tracer === null) && owner.tracer === null);
  feed(0, esp(H, S, 0xd0000001), HOOK_POSTROUTING);
  const it = await trace({ filter: 'proto=esp', count: 1 });
  assert.ok(cores.every((c) => c.engine.tracer !== null) && owner.tracer !== null, 'subscribed everywhere before the answer');
  await it.next(); // the first heartbeat
  await it.return!(undefined);
  assert.ok(cores.every((c) => c.engine.tracer === null) && owner.tracer === null, 'the client left: zero cost again');
  assert.equal(posted(), 0);
  await close();
});

test('workers: 2: each worker\'s lines say which worker and queue; forwarded packets show the owner\'s NAT decision; the filter runs in the worker', async () => {
  const { trace, feed, posted, close } = setup();
  const it = await trace({ filter: 'kind=ike', count: 4 });
  // ESP does not match: never copied nor posted.
  for (let w = 0; w < 2; w++) feed(w, esp(H, S, 0xd0000001), HOOK_POSTROUTING, 20);
  feed(0, ike(H, S, { ispi: 0x1111000000000001n, exchange: IKE_SA_INIT }), HOOK_POSTROUTING);
  await hop(30);
  feed(1, ike(S, PUB, { ispi: 0x1111000000000001n, rspi: 0x2222000000000001n, exchange: IKE_SA_INIT, flags: 0x20 }), HOOK_PREROUTING);
  const lines: TraceLineJson[] = [];
  for (let i = 0; i < 20 && lines.length < 4; i++) {
    const c = await it.next();
    if (c.done) break;
    lines.push(...c.value.packets);
    if (c.value.done) break;
  }
  const text = lines.map(formatTraceLine);
  assert.equal(lines.length, 4, text.join('\n'));
  assert.equal(posted(), 2, 'only the two IKE packets left the workers');
  assert.ok(text.some((l) => /^\S+ q5 w0 postrouting .* IKE_SA_INIT .*\| nat: → hold \| hold$/.test(l)), text.join('\n'));
  assert.ok(text.some((l) => /^\S+ q5 owner postrouting .* IKE_SA_INIT .*nat: mapping=10\.0\.0\.11→203\.0\.113\.1 .*rewritten → accept \| accept rewrite src 10\.0\.0\.11→203\.0\.113\.1$/.test(l)), text.join('\n'));
  assert.ok(text.some((l) => /^\S+ q6 w1 prerouting .* IKE_SA_INIT response/.test(l)), text.join('\n'));
  assert.ok(text.some((l) => /^\S+ q6 owner prerouting .* rewrite dst 203\.0\.113\.1→10\.0\.0\.11$/.test(l)), text.join('\n'));
  assert.equal((await it.next()).done, true, 'count reached over all threads: the stream ends');
  await close();
});

test('workers: 2: one queue bound for the client over both workers; the rest is counted as missed and never posted', async () => {
  const { cores, trace, feed, posted, close } = setup();
  // DNS to a host that is no NAT server: the workers decide it (nothing goes to the owner).
  const dns = udpPacket(H, ip('192.0.2.53'), 1000, 53, new Uint8Array(20));
  const it = await trace({ filter: 'proto=udp dport=53', max: 3 });
  for (let w = 0; w < 2; w++) feed(w, dns, HOOK_POSTROUTING, 5);
  await hop(30);
  assert.equal(posted(), 3, 'the client\'s 3 places were shared by both workers');
  const c = (await it.next()).value as Chunk;
  assert.equal(c.packets.length, 3);
  assert.equal(c.dropped, 7);
  // Taken by the client: room again, in either worker.
  feed(1, dns, HOOK_POSTROUTING, 1);
  await hop(30);
  const d = (await it.next()).value as Chunk;
  assert.equal(d.packets.length, 1);
  assert.equal(d.packets[0]!.thread, 'w1');
  await it.return!(undefined);
  assert.ok(cores.every((x) => x.engine.tracer === null));
  await close();
});
