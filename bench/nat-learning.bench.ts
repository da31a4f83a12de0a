/**
 * Added latency of SPI learning, in process: the real engine and NAT stage over the fake NFQUEUE
 * binding, real timers. N hosts run IKE_SA_INIT + IKE_AUTH at the same instant against a simulated
 * server that answers every accepted request after --rtt ms; each host stays silent --idle ms after
 * its IKE_AUTH, then all send their first ESP packet at one instant and the server answers on the
 * partner SPI. Latency = first packet fed → its reply delivered to that host. The baseline, in the
 * same run and round: the same hosts' next packet once everything is learned (paired per round).
 *
 *   node dist/bench/nat-learning.bench.js [--hosts 64] [--rtt 1] [--idle 300] [--rounds 5]
 */
import { Engine } from '../src/engine/engine';
import { Interfaces } from '../src/io/interfaces';
import { FakeBinding } from '../src/io/fake';
import { NfQueue } from '../src/io/nfqueue';
import { V_ACCEPT } from '../src/io/batch-layout';
import { HOOK_POSTROUTING, HOOK_PREROUTING } from '../src/engine/stage';
import { natConfigSchema } from '../src/nat/config';
import { NatStage } from '../src/nat/stage';
import { esp, ike, ip, IKE_SA_INIT, IKE_AUTH } from '../test/kit/nat';
import { numArg } from './args';

const HOSTS = numArg('--hosts', 64);
const RTT = numArg('--rtt', 1);
const IDLE = numArg('--idle', 300);
const ROUNDS = numArg('--rounds', 5);
const PUB = ip('203.0.113.1');
const S = ip('198.51.100.10');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const hostAddr = (k: number): number => ip(`10.1.${k >> 8}.${(k & 255) + 1}`);
const ispi = (k: number): bigint => 0x1100000000000000n + BigInt(k);
const rspi = (k: number): bigint => 0x2200000000000000n + BigInt(k);

interface Sent { dir: 'out' | 'in'; host: number; what: 'init' | 'auth' | 'esp' }

async function round(): Promise<{ learn: number[]; steady: number[]; misrouted: number; counters: Record<string, number> }> {
  const cfg = natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'wan0', journal: { path: null } });
  const stage = new NatStage(cfg);
  const engine = new Engine({ held: { max: 4096, timeoutMs: 15000, defaultVerdict: 'drop' }, interfaces: Interfaces.fromList([]) });
  const fake = new FakeBinding();
  let source = -1;
  const q = NfQueue.open({ queue: 0, batchSize: 256 }, (b) => engine.handleBatch(source, b), fake);
  source = engine.addSource(q, 0, { defaultVerdict: 'accept', onInvalid: 'drop' });
  engine.setPipeline([stage]);
  const fq = fake.queue(0);
  const meta = new Map<number, Sent>();
  let nextId = 1;
  let pending: { bytes: Uint8Array; hook: number; s: Sent }[] = [];
  const send = (bytes: Uint8Array, hook: number, s: Sent): void => { pending.push({ bytes, hook, s }); };
  const flush = (): void => {
    while (pending.length > 0) {
      const batch = pending.splice(0, 256);
      fq.feed(batch.map((p) => { const id = nextId++; meta.set(id, p.s); return { bytes: p.bytes, hook: p.hook, id }; }));
    }
  };
  const firstAt = new Array<number>(HOSTS).fill(0);
  const learn: number[] = [];
  const steady: number[] = [];
  const steadyAt = new Array<number>(HOSTS).fill(0);
  let misrouted = 0;
  let cursor = 0;
  let phase: 'learn' | 'steady' = 'learn';
  const authDone: number[] = [];

  const onVerdict = (id: number, verdict: number, payload: Uint8Array | null): void => {
    const s = meta.get(id);
    if (!s) return;
    meta.delete(id);
    if (verdict !== V_ACCEPT) return;
    if (s.dir === 'out') {
      // The server: answer after one round trip.
      const k = s.host;
      setTimeout(() => {
        if (s.what === 'init') send(ike(S, PUB, { ispi: ispi(k), rspi: rspi(k), exchange: IKE_SA_INIT, flags: 0x20 }), HOOK_PREROUTING, { dir: 'in', host: k, what: 'init' });
        else if (s.what === 'auth') send(ike(S, PUB, { ispi: ispi(k), rspi: rspi(k), exchange: IKE_AUTH, flags: 0x20, msgId: 1 }), HOOK_PREROUTING, { dir: 'in', host: k, what: 'auth' });
        else send(esp(S, PUB, 0x20000 + k, phase === 'learn' ? 1 : 2), HOOK_PREROUTING, { dir: 'in', host: k, what: 'esp' });
        flush();
      }, RTT);
      return;
    }
    const to = payload ? new DataView(payload.buffer, payload.byteOffset).getUint32(16) : 0;
    if (to !== hostAddr(s.host)) { misrouted++; return; }
    if (s.what === 'init') {
      send(ike(hostAddr(s.host), S, { ispi: ispi(s.host), rspi: rspi(s.host), exchange: IKE_AUTH, msgId: 1 }), HOOK_POSTROUTING, { dir: 'out', host: s.host, what: 'auth' });
    } else if (s.what === 'auth') {
      authDone.push(s.host);
    } else if (phase === 'learn') {
      learn.push(performance.now() - firstAt[s.host]!);
    } else {
      steady.push(performance.now() - steadyAt[s.host]!);
    }
  };
  const pump = setInterval(() => {
    while (cursor < fq.sent.length) { const v = fq.sent[cursor++]!; onVerdict(v.id, v.verdict, v.payload); }
    flush();
  }, 0);

  for (let k = 0; k < HOSTS; k++) send(ike(hostAddr(k), S, { ispi: ispi(k), exchange: IKE_SA_INIT }), HOOK_POSTROUTING, { dir: 'out', host: k, what: 'init' });
  flush();
  const deadline = Date.now() + 30000;
  while (authDone.length < HOSTS && Date.now() < deadline) await sleep(5);
  if (authDone.length < HOSTS) throw new Error(`only ${authDone.length}/${HOSTS} hosts finished IKE`);
  await sleep(IDLE);
  const t = performance.now();
  for (let k = 0; k < HOSTS; k++) { firstAt[k] = t; send(esp(hostAddr(k), S, 0x10000 + k, 1), HOOK_POSTROUTING, { dir: 'out', host: k, what: 'esp' }); }
  flush();
  while (learn.length < HOSTS && Date.now() < deadline) await sleep(2);
  phase = 'steady';
  await sleep(50);
  const t2 = performance.now();
  for (let k = 0; k < HOSTS; k++) { steadyAt[k] = t2; send(esp(hostAddr(k), S, 0x10000 + k, 2), HOOK_POSTROUTING, { dir: 'out', host: k, what: 'esp' }); }
  flush();
  while (steady.length < HOSTS && Date.now() < deadline) await sleep(2);
  clearInterval(pump);
  const st = stage.stats() as { counters: Record<string, number> };
  await engine.close();
  q.close();
  if (learn.length < HOSTS) throw new Error(`only ${learn.length}/${HOSTS} first replies delivered`);
  return { learn, steady, misrouted, counters: st.counters };
}

const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]!; };

async function main(): Promise<void> {
  console.log(`# SPI learning latency, in process: ${HOSTS} hosts connect at once, idle ${IDLE} ms, first packets at one instant; server RTT ${RTT} ms`);
  console.log('| round | first reply p50 ms | p99 ms | steady p50 ms | p99 ms | p50 ratio | p99 ratio | reply / elimination / window | misrouted |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |');
  const r50: number[] = [];
  const r99: number[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const x = await round();
    const [l50, l99, s50, s99] = [pct(x.learn, 0.5), pct(x.learn, 0.99), pct(x.steady, 0.5), pct(x.steady, 0.99)];
    r50.push(l50 / s50);
    r99.push(l99 / s99);
    const c = x.counters;
    console.log(`| ${r} | ${l50.toFixed(2)} | ${l99.toFixed(2)} | ${s50.toFixed(2)} | ${s99.toFixed(2)} | ${(l50 / s50).toFixed(2)} | ${(l99 / s99).toFixed(2)} | ${c['nat.learned_reply']} / ${c['nat.learned_elimination']} / ${c['nat.window_learned']} | ${x.misrouted} |`);
    if (x.misrouted !== 0) throw new Error('misrouted');
  }
  console.log(`\nmedian of per-round ratios (first reply / steady): p50 ${pct(r50, 0.5).toFixed(2)}×, p99 ${pct(r99, 0.5).toFixed(2)}×`);
}

main().catch((e) => { console.error(e); process.exit(1); });
