/**
 * workers: 2 in one thread, on the fake binding: two WorkerCores (queues 5 and 6) with NatWorkerStage
 * over the shared table of an owner NatStage, joined through ForwardedSource with an event-loop hop
 * each way (as postMessage would). A host negotiates through one worker while the server answers
 * through the other; then both directions take the workers' fast path, and the owner still drops
 * what it must.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../config/schema';
import { Engine } from '../engine/engine';
import { HOOK_POSTROUTING, HOOK_PREROUTING } from '../engine/stage';
import { V_ACCEPT, V_DROP, V_HOLD } from '../io/batch-layout';
import { FakeBinding, type SentVerdict } from '../io/fake';
import { Interfaces } from '../io/interfaces';
import { NatStage } from '../nat/stage';
import { createLogger } from '../obs/log';
import { mergeStats } from './merge-stats';
import { spreadQueues, collectRules } from './pipeline';
import { fakeWorkers } from '../../test/kit/fake-workers';
import { ip, ike, esp, srcOf, dstOf, IKE_SA_INIT, IKE_AUTH } from '../../test/kit/nat';

const PUB = ip('203.0.113.1');
const S = ip('198.51.100.10');
const H = ip('10.0.0.11');
const ISPI = 0x1111000000000001n, RSPI = 0x2222000000000001n;
const hop = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

const cfgInput = {
  workers: 2,
  queues: [{ num: 5, fail_open: false }],
  nat: { public: ['203.0.113.1'], wan_interface: 'wan0', servers: ['198.51.100.0/24'], queue: 5, journal: { path: null } },
};
const setupCfg = { cfg: configSchema.parse(cfgInput) };

function setup() {
  const cfg = setupCfg.cfg;
  const log = createLogger('silent');
  const interfaces = Interfaces.fromList([]);
  const owner = new Engine({ held: { max: 100, timeoutMs: 5000, defaultVerdict: 'accept' }, interfaces });
  const nat = new NatStage(cfg.nat!, { shared: true });
  owner.setPipeline([nat]);
  const { cores, fakes } = fakeWorkers(2, cfg, owner, nat, log, interfaces);
  return { cfg, owner, nat, cores, fakes };
}

let nextId = 1;

/** Feeds one packet to a worker's queue; returns its verdict, waiting for the owner when it was forwarded. */
async function send(fake: FakeBinding, queue: number, bytes: Uint8Array, hook: number): Promise<SentVerdict & { forwarded: boolean }> {
  const q = fake.queue(queue);
  const id = nextId++;
  const [v] = q.feed([{ bytes, hook, id }]);
  if (v) { assert.notEqual(v.verdict, V_HOLD); return { ...v, forwarded: false }; }
  for (let i = 0; i < 200; i++) {
    const r = q.sent.find((s) => s.released && s.id === id);
    if (r) return { ...r, forwarded: true };
    await hop();
  }
  throw new Error(`no verdict for packet ${id} on queue ${queue}`);
}

test('workers: 2 on the fake binding: negotiation across both workers through the owner, then the fast path in both directions', async () => {
  const { owner, nat, cores, fakes } = setup();
  const [w0, w1] = fakes as [FakeBinding, FakeBinding];
  // IKE_SA_INIT out through worker 0: a new IKE SA, the owner's to create.
  let v = await send(w0, 5, ike(H, S, { ispi: ISPI, exchange: IKE_SA_INIT }), HOOK_POSTROUTING);
  assert.equal(v.verdict, V_ACCEPT); assert.ok(v.forwarded); assert.equal(srcOf(v.payload!), PUB);
  // Its response in through worker 1: the responder SPI is recorded by the owner.
  v = await send(w1, 6, ike(S, PUB, { ispi: ISPI, rspi: RSPI, exchange: IKE_SA_INIT, flags: 0x20 }), HOOK_PREROUTING);
  assert.equal(v.verdict, V_ACCEPT); assert.ok(v.forwarded); assert.equal(dstOf(v.payload!), H);
  // IKE_AUTH both ways (SA-creating: always the owner's), then the new SA's first ESP each way.
  v = await send(w0, 5, ike(H, S, { ispi: ISPI, rspi: RSPI, exchange: IKE_AUTH, msgId: 1 }), HOOK_POSTROUTING);
  assert.equal(v.verdict, V_ACCEPT); assert.ok(v.forwarded);
  v = await send(w1, 6, ike(S, PUB, { ispi: ISPI, rspi: RSPI, exchange: IKE_AUTH, flags: 0x20, msgId: 1 }), HOOK_PREROUTING);
  assert.equal(v.verdict, V_ACCEPT); assert.equal(dstOf(v.payload!), H);
  v = await send(w1, 6, esp(S, PUB, 0xc0000001), HOOK_PREROUTING);
  assert.equal(v.verdict, V_ACCEPT); assert.ok(v.forwarded, 'an unknown SPI is learned by the owner'); assert.equal(dstOf(v.payload!), H);
  v = await send(w0, 5, esp(H, S, 0xd0000001), HOOK_POSTROUTING);
  assert.equal(v.verdict, V_ACCEPT); assert.equal(srcOf(v.payload!), PUB);
  // The learning turn ends (window_settle_ms); from then on both workers decide ESP themselves.
  for (let i = 0; i < 100 && nat.state.learning.turns > 0; i++) await hop();
  assert.equal(nat.state.learning.turns, 0, 'the learning turn ended');
  for (let i = 0; i < 10; i++) {
    for (const [fake, q] of [[w0, 5], [w1, 6]] as const) {
      const o = await send(fake, q, esp(H, S, 0xd0000001, 10 + i), HOOK_POSTROUTING);
      assert.equal(o.verdict, V_ACCEPT); assert.ok(!o.forwarded, 'outbound ESP on a known SA: fast path'); assert.equal(srcOf(o.payload!), PUB);
      const n = await send(fake, q, esp(S, PUB, 0xc0000001, 10 + i), HOOK_PREROUTING);
      assert.equal(n.verdict, V_ACCEPT); assert.ok(!n.forwarded, 'inbound ESP on a known SA: fast path'); assert.equal(dstOf(n.payload!), H);
    }
  }
  // An SPI nobody negotiated, outside any window: the owner drops it, the worker says so.
  v = await send(w0, 5, esp(S, PUB, 0xc0000099), HOOK_PREROUTING);
  assert.equal(v.verdict, V_DROP); assert.ok(v.forwarded);
  // HA standby (src/ha sets the owner's NatStage passive): the workers' fast path stops at once; the
  // owner drops what the NAT owns (nat.ha_standby). Active again: the fast path resumes.
  nat.passive = true;
  for (const [fake, q] of [[w0, 5], [w1, 6]] as const) {
    const o = await send(fake, q, esp(H, S, 0xd0000001, 40), HOOK_POSTROUTING);
    assert.equal(o.verdict, V_DROP, 'a standby translates nothing, in any worker'); assert.ok(o.forwarded);
    const n = await send(fake, q, esp(S, PUB, 0xc0000001, 40), HOOK_PREROUTING);
    assert.equal(n.verdict, V_DROP); assert.ok(n.forwarded);
  }
  nat.passive = false;
  v = await send(w1, 6, esp(S, PUB, 0xc0000001, 41), HOOK_PREROUTING);
  assert.equal(v.verdict, V_ACCEPT); assert.ok(!v.forwarded); assert.equal(dstOf(v.payload!), H);
  // The owner's table counts the fast path's packets too: each worker adds its counts every 250 ms
  // (ActivityCache, FLUSH_MS), from its engine's tick.
  const sas = nat.state.sas;
  const inId = sas.find(1 /* ESP_IN */, 0, S, 0xc0000001, 0);
  assert.ok(inId >= 0);
  for (let i = 0; i < 100 && sas.pkts[inId]! < 21; i++) await hop();
  assert.ok(sas.pkts[inId]! >= 21, `inbound SA packets ${sas.pkts[inId]}`);
  // Stats: workers' counters add up; the NAT's state is the owner's plus the workers' fast path.
  const m = mergeStats({ counters: owner.counters.snapshot(true), drops: owner.counters.dropSnapshot(), natState: nat.stats() as Record<string, unknown>, held: owner.held.size },
    cores.map((c) => c.stats()));
  const get = (name: string): number => m.counters.find((c) => c.name === name)?.value ?? 0;
  assert.equal(get('engine.packets'), 52);
  assert.equal(get('nat.owner_dropped'), 5);
  assert.ok(get('nat.esp.unknown_spi') + get('nat.unknown') >= 1 || m.drops.some((d) => d.name.startsWith('nat.') && d.name !== 'nat.owner_dropped'), JSON.stringify(m.drops));
  const workers = m.stages.nat!.state!.workers as Record<string, number>;
  assert.equal(workers.in, 21);
  assert.equal(workers.out, 20);
  assert.equal(workers.forwarded, 11);
  assert.equal(workers.lost, 0);
  assert.equal(m.queues.length, 2);
  // A reload that changes steering but not the NAT keeps the worker's NAT stage (and what waits on
  // the owner); a packet forwarded before it is answered after it.
  const id = nextId;
  const pending = send(w0, 5, esp(H, S, 0xd0000077), HOOK_POSTROUTING); // a new SA: forwarded
  const natBefore = cores[0]!.engine.pipeline.find((s) => s.name === 'nat');
  await cores[0]!.reload(configSchema.parse({ ...JSON.parse(JSON.stringify(cfgInput)), steer: { rules: [{ name: 'x', match: { proto: 'tcp', dport: 23 }, action: 'accept' }] } }), nat.state.sharedMemory());
  assert.equal(cores[0]!.engine.pipeline.find((s) => s.name === 'nat'), natBefore);
  assert.deepEqual(cores[0]!.engine.pipeline.map((s) => s.name), ['steer', 'nat']);
  v = await pending;
  assert.equal(v.id, id); assert.equal(v.verdict, V_ACCEPT); assert.equal(srcOf(v.payload!), PUB);
  for (const c of cores) await c.close();
  await owner.close();
});

test('workers: 2 rules: every --queue-num q becomes --queue-balance q:q+1 (and --queue-cpu-fanout when asked)', () => {
  const base = { queues: [{ num: 5 }], nat: { public: ['203.0.113.1'], wan_interface: 'wan0', queue: 5, journal: { path: null } } };
  const one = collectRules(configSchema.parse(base)).iptables.filter((r) => r.args.includes('NFQUEUE'));
  assert.ok(one.length > 0 && one.every((r) => r.args.includes('--queue-num')));
  const two = collectRules(configSchema.parse({ ...base, workers: 2 })).iptables.filter((r) => r.args.includes('NFQUEUE'));
  assert.equal(two.length, one.length);
  for (const r of two) {
    assert.ok(!r.args.includes('--queue-num'));
    assert.equal(r.args[r.args.indexOf('--queue-balance') + 1], '5:6');
    assert.ok(!r.args.includes('--queue-cpu-fanout'));
  }
  const fan = collectRules(configSchema.parse({ ...base, workers: 2, queue_cpu_fanout: true })).iptables.filter((r) => r.args.includes('NFQUEUE'));
  assert.ok(fan.every((r) => r.args.includes('--queue-cpu-fanout')));
  assert.equal(spreadQueues(configSchema.parse(base), { iptables: [], routes: [], rules: [] } as never).iptables.length, 0);
});

test('workers: 2 rules: DHCP stays on the first worker\'s queue (the relay\'s transactions live in one thread); the rest spreads', () => {
  const cfg = configSchema.parse({ workers: 2, queues: [{ num: 0 }],
    steer: { capture: { queue: 0 }, rules: [{ name: 'x', match: { proto: 'udp', dport: 9000 }, action: 'accept' }] },
    dhcp: { inform: { interfaces: ['ppp*'], scopes: [{ routers: ['10.0.0.1'] }] }, relay: { interfaces: [{ name: 'lan0' }], servers: ['203.0.113.10'] } } });
  const rules = collectRules(cfg).iptables.filter((r) => r.args.includes('NFQUEUE'));
  const dhcp = rules.filter((r) => r.args.includes('67'));
  assert.ok(dhcp.length >= 3, 'inform, relay request and server reply rules');
  for (const r of dhcp) assert.deepEqual(r.args.slice(r.args.indexOf('NFQUEUE') + 1, r.args.indexOf('NFQUEUE') + 3), ['--queue-num', '0'], r.args.join(' '));
  const other = rules.filter((r) => !r.args.includes('67'));
  assert.ok(other.length > 0 && other.every((r) => r.args.includes('--queue-balance')));
});

test('workers: queue ranges must not meet; queue_cpu_fanout needs workers; tun sources work in both modes', () => {
  const bad = configSchema.safeParse({ workers: 2, queues: [{ num: 5 }, { num: 6 }] });
  assert.ok(!bad.success && /meets queue 5's range|meets queue 6's range/.test(JSON.stringify(bad.error.issues)));
  assert.ok(configSchema.safeParse({ workers: 2, queues: [{ num: 5 }, { num: 7 }] }).success);
  assert.ok(!configSchema.safeParse({ workers: 2, queues: [{ num: 65535 }] }).success);
  assert.ok(configSchema.safeParse({ workers: 2, queues: [], tun: [{ name: 'tun0' }] }).success, 'each worker opens a queue of the TUN device');
  assert.ok(!configSchema.safeParse({ queue_cpu_fanout: true }).success);
});

test('workers: the learning-turn count and the HA standby flag are read once per batch (every packet of it arrived before)', async () => {
  const { owner, nat, cores, fakes } = setup();
  const [w0] = fakes as [FakeBinding];
  const s = nat.state;
  const now = Date.now();
  const h = s.host(H, now);
  const inId = s.addSa(1 /* ESP_IN */, s.hosts.pub[h]!, S, h, 0xc0000005, 0, 0, now, false);
  assert.ok(inId >= 0);
  const turns = s.sharedMemory().turns;
  const q = w0.queue(5);
  const batch = (): { bytes: Uint8Array; hook: number; id: number }[] =>
    [0, 1].map((k) => ({ bytes: esp(S, PUB, 0xc0000005, 100 + nextId + k), hook: HOOK_PREROUTING, id: nextId++ }));
  // No turn: both packets on the worker's fast path.
  assert.deepEqual(q.feed(batch()).map((v) => v.verdict), [V_ACCEPT, V_ACCEPT]);
  // A stage ahead of the NAT publishes a turn (as the owner would) while the batch's first packet is decided.
  let flip = false;
  cores[0]!.engine.setPipeline([{ name: 'flip', failure: 'open', process: () => { if (flip) { Atomics.store(turns, 0, 1); flip = false; } } },
    ...cores[0]!.engine.pipeline]);
  flip = true;
  assert.deepEqual(q.feed(batch()).map((v) => v.verdict), [V_ACCEPT, V_ACCEPT], 'the batch decided on the turn count read at its start');
  const fwd0 = (cores[0]!.stats().stages.nat!.state as { worker: { forwarded: number; in: number } }).worker;
  assert.equal(fwd0.in, 4); assert.equal(fwd0.forwarded, 0);
  // The next batch sees the turn: both to the owner (held here until it answers).
  assert.deepEqual(q.feed(batch()), []);
  for (let i = 0; i < 100 && q.sent.filter((v) => v.released).length < 2; i++) await hop();
  assert.deepEqual(q.sent.filter((v) => v.released).map((v) => [v.verdict, dstOf(v.payload!)]), [[V_ACCEPT, H], [V_ACCEPT, H]]);
  // The standby flag: read at the batch's start too.
  Atomics.store(turns, 0, 0);
  Atomics.store(turns, 1, 1);
  assert.deepEqual(q.feed(batch()), [], 'a standby worker decides nothing');
  Atomics.store(turns, 1, 0);
  for (let i = 0; i < 100 && q.sent.filter((v) => v.released).length < 4; i++) await hop();
  assert.equal(q.sent.filter((v) => v.released).length, 4);
  assert.deepEqual(q.feed(batch()).map((v) => v.verdict), [V_ACCEPT, V_ACCEPT]);
  const w = (cores[0]!.stats().stages.nat!.state as { worker: Record<string, number> }).worker;
  assert.equal(w.in, 6); assert.equal(w.forwarded, 4); assert.equal(w.answered, 4); assert.equal(w.slow, 0, 'no lookup met the owner writing');
  for (const c of cores) await c.close();
  await owner.close();
});
