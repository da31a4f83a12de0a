/**
 * Steering: first-match classification rate with 10, 100 and 1000 rules on a realistic gateway
 * packet mix, per core, plus a heap check (the matcher must not allocate per packet).
 *   node --expose-gc dist/bench/steer.bench.js [--quick]
 * The loop has the engine's shape (one reused context, classify() per packet, then the stage); the
 * same loop without the stage runs in the same process as the baseline, and the steer figure is
 * the difference: prefilter bitsets, the rule tests, the action.
 * The rule sets look like a gateway's: service rules by port and source prefix, prefix rules, rules
 * on interface globs, marks, ranges, IKE/DHCP selectors; most packets (ESP data) match late or never.
 */
import { cpus, loadavg } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { steerConfigSchema } from '../src/steer/schema';
import { SteerStage } from '../src/steer/stage';
import { Decision, fakeInterfaces, fakeServices } from '../test/kit/steer';
import { Classified, classify } from '../src/packet/classify';
import { capturedPackets } from '../test/kit/packet';
import { ipv4Esp, ipv4Raw } from '../src/packet/build';
import { tcpRepr, ACK_FLAG } from '../src/packet/tcp';
import { ip4 } from '../src/packet/bytes';
import type { PacketContext } from '../src/engine/stage';

const quick = process.argv.includes('--quick');
const gc = (): void => { (global as { gc?: () => void }).gc?.(); };
let seed = 42;
const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % n; };

const ifaces = fakeInterfaces({ lo: 1, eth0: 2, eth1: 3, ipsec0: 4, ppp0: 5, ppp1: 6, ppp2: 7, wlan0: 8 });
/** The /24s rules select on; traffic comes from some of them, so some packets match. */
const NETS = Array.from({ length: 64 }, (_, i) => `10.${(i * 37) % 250}.${(i * 11) % 250}`);
const SERVICE_PORTS = [22, 25, 53, 80, 110, 123, 143, 443, 465, 587, 993, 995, 1194, 3306, 3389, 5060, 8080, 8443];

/** A realistic rule set of n rules (the seed rules first, then a mix of kinds). */
function rules(n: number): unknown[] {
  const out: unknown[] = [
    { name: 'dhcp-replies-out-eth0', match: { hook: 'output', out: 'ipsec0', proto: 'udp', sport: 67, dport: 68 }, action: { route_via: { dev: 'eth0' } } },
    { name: 'telnet-tunnel', match: { hook: 'output', proto: 'tcp', dst: '203.0.113.2', dport: 23 }, action: { route_via: { dev: 'ipsec0' } } },
  ];
  for (let i = out.length; i < n; i++) {
    const k = rnd(10);
    const net = `${NETS[rnd(NETS.length)]}.0/24`;
    let match: Record<string, unknown>;
    if (k < 4) match = { proto: rnd(2) ? 'tcp' : 'udp', dport: SERVICE_PORTS[rnd(SERVICE_PORTS.length)], src: net };
    else if (k < 6) match = { dst: net, not: { dport: 22 } };
    else if (k < 7) match = { in: rnd(2) ? 'ppp*' : 'wlan0', src: net };
    else if (k < 8) match = { proto: 'udp', dport: `${10000 + rnd(20000)}:${30000 + rnd(30000)}`, dst: net };
    else if (k < 9) match = { mark: `0x${(rnd(255) + 1).toString(16)}00/0xff00`, proto: 'tcp' };
    else match = rnd(2) ? { dhcp_type: ['inform', 'request'][rnd(2)], in: 'ppp*' } : { ike_exchange: 'ike_sa_init', src: net };
    const action = [{ mark: `0x${(i & 0xff).toString(16)}/0xff` }, 'accept', { drop: 'bench' }, 'continue'][rnd(4)];
    out.push({ name: `r${i}`, match, action });
  }
  return out.slice(0, n);
}

/**
 * Per 100: 40 ESP-in-UDP, 25 ESP, 25 TCP (web/ssh/other, from LAN nets some rules name), 5 IKE,
 * 5 DHCP. Real bytes in one slab, with per-packet metadata (in/out interface, hook, mark), so the
 * loop below has the engine's shape: one reused Classified and one reused PacketContext.
 */
interface Batch { bytes: Uint8Array; off: Int32Array; len: Int32Array; indev: Int32Array; hook: Int32Array; mark: Int32Array }
function mix(): Batch {
  const ike = capturedPackets('ike-esp-natt.pcap'), dhcp = capturedPackets('dhcp-inform-ack.pcap');
  const lan = (): number => ip4(rnd(2) ? `${NETS[rnd(NETS.length)]}.${1 + rnd(250)}` : `10.${rnd(250)}.${rnd(250)}.${1 + rnd(250)}`);
  const pk: { b: Uint8Array; indev: number; mark: number }[] = [];
  const wan = 3;
  for (let i = 0; i < 40; i++) pk.push({ b: ike[4]!.ip, indev: wan, mark: 0 });
  for (let i = 0; i < 25; i++) pk.push({ b: ipv4Esp({ src: ip4('198.51.100.9'), dst: ip4('203.0.113.1') }, { spi: 0xd0000000 + rnd(1000), seq: 1, payload: new Uint8Array(1400) }), indev: wan, mark: 0 });
  for (let i = 0; i < 25; i++) {
    const t = { srcPort: 30000 + rnd(30000), dstPort: [443, 443, 80, 22, 8080, 5222][rnd(6)]!, flags: ACK_FLAG, payload: new Uint8Array(rnd(1200)) };
    const seg = new Uint8Array(tcpRepr.encodingLength(t));
    const src = lan(), dst = ip4(`192.0.2.${rnd(250)}`);
    tcpRepr.encode(t, seg, 0, { src, dst });
    pk.push({ b: ipv4Raw({ src, dst, protocol: 6 }, seg), indev: [2, 5, 6, 8][rnd(4)]!, mark: rnd(4) ? 0 : 0x300 });
  }
  for (let i = 0; i < 5; i++) pk.push({ b: ike[rnd(2) * 2]!.ip, indev: wan, mark: 0 });
  for (let i = 0; i < 5; i++) pk.push({ b: dhcp[0]!.ip, indev: 5, mark: 0 });
  for (let i = pk.length - 1; i > 0; i--) { const j = rnd(i + 1); [pk[i], pk[j]] = [pk[j]!, pk[i]!]; }
  const total = pk.reduce((n, p) => n + 64 + p.b.length, 0);
  const out: Batch = { bytes: new Uint8Array(total), off: new Int32Array(pk.length), len: new Int32Array(pk.length),
    indev: Int32Array.from(pk, (p) => p.indev), hook: new Int32Array(pk.length), mark: Int32Array.from(pk, (p) => p.mark) };
  let at = 0;
  pk.forEach((p, i) => { at += 64; out.bytes.set(p.b, at); out.off[i] = at; out.len[i] = p.b.length; at += p.b.length; });
  return out;
}

const info = new Classified();
const ctx: PacketContext = { bytes: new Uint8Array(0), offset: 0, length: 0, capacity: 0, mark: 0, indev: 0, outdev: 0, hook: 0, queue: 0, info };

let sink = 0;
/** The engine's per-packet shape: set the context, classify, reset the decision, run the stage. */
function timed(st: SteerStage | null, b: Batch, n: number): { wall: number; cpu: number } {
  const d = new Decision();
  const m = b.off.length;
  ctx.bytes = b.bytes;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0, j = 0; i < n; i++) {
    ctx.offset = b.off[j]!; ctx.length = b.len[j]!; ctx.indev = b.indev[j]!; ctx.hook = b.hook[j]!; ctx.mark = b.mark[j]!;
    classify(info, b.bytes, ctx.offset, ctx.length);
    d.reset();
    if (st !== null) st.process(ctx, d);
    sink = (sink + d.verdict + (d.markValue & 0xff) + info.kind) & 0xffff; // stays a small integer
    if (++j === m) j = 0;
  }
  const wall = Number(process.hrtime.bigint() - t0) / n;
  const cu = process.cpuUsage(c0);
  return { wall, cpu: ((cu.user + cu.system) * 1000) / n };
}

/** Best of 3 by CPU time. */
function best(st: SteerStage | null, b: Batch, n: number): { wall: number; cpu: number } {
  timed(st, b, 200_000);
  return [timed(st, b, n), timed(st, b, n), timed(st, b, n)].sort((x, y) => x.cpu - y.cpu)[0]!;
}

async function main(): Promise<void> {
  const n = quick ? 300_000 : 3_000_000;
  console.log(`# steer: ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const batch = mix();
  const base = best(null, batch, n);
  console.log(`\nSame loop without the steer stage (context + classify + decision reset): ${base.cpu.toFixed(1)} ns/packet CPU; steer = total − that.`);
  console.log(`\n| rules | rules tested per packet (mean) | matched % | total ns/packet (CPU) | steer ns/packet (CPU) | steer M packets/s per core | CPU share | compile ms |`);
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const count of [10, 100, 1000]) {
    seed = 42 + count;
    const cfg = steerConfigSchema.parse({ rules: rules(count) });
    const t0 = process.hrtime.bigint();
    const st = new SteerStage(cfg);
    const compileMs = Number(process.hrtime.bigint() - t0) / 1e6;
    st.init(fakeServices(ifaces));
    const probe = (st as unknown as { matcher: { first(c: PacketContext): number; tested(c: PacketContext): number } }).matcher;
    let matched = 0, tested = 0;
    for (let j = 0; j < batch.off.length; j++) {
      ctx.offset = batch.off[j]!; ctx.length = batch.len[j]!; ctx.indev = batch.indev[j]!; ctx.hook = batch.hook[j]!; ctx.mark = batch.mark[j]!;
      classify(info, batch.bytes, ctx.offset, ctx.length);
      if (probe.first(ctx) >= 0) matched++;
      tested += probe.tested(ctx);
    }
    const r = best(st, batch, n);
    const steer = Math.max(r.cpu - base.cpu, 0.1);
    console.log(`| ${count} | ${(tested / batch.off.length).toFixed(1)} | ${Math.round((100 * matched) / batch.off.length)} | ${r.cpu.toFixed(1)} | ${steer.toFixed(1)} | ${(1e3 / steer).toFixed(2)} | ${Math.round((100 * r.cpu) / r.wall)}% | ${compileMs.toFixed(1)} |`);
  }
  // Allocation check: 1000 rules. Per-packet allocation would grow with the count (≥ 16 B per boxed
  // number) and run scavenges; a constant delta (JIT code, feedback) does not. Best of 3 rounds.
  const st = new SteerStage(steerConfigSchema.parse({ rules: rules(1000) }));
  st.init(fakeServices(ifaces));
  timed(st, batch, 1_000_000);
  let gcs = 0;
  const obs = new PerformanceObserver((list) => { gcs += list.getEntries().length; });
  obs.observe({ entryTypes: ['gc'] });
  for (const count of [1_000_000, 4_000_000]) {
    let best = { delta: Infinity, gcs: 0 };
    for (let round = 0; round < 3; round++) {
      gc(); gc();
      await new Promise((r) => setTimeout(r, 20));
      gcs = 0;
      const h0 = process.memoryUsage().heapUsed;
      timed(st, batch, count);
      const h1 = process.memoryUsage().heapUsed;
      await new Promise((r) => setTimeout(r, 20));
      if (h1 - h0 < best.delta) best = { delta: h1 - h0, gcs };
    }
    console.log(`Allocation check (1000 rules, ${count} packets): heapUsed delta ${best.delta} bytes ` +
      `(${(best.delta / count).toFixed(3)} B/packet), GC events ${best.gcs}` +
      `${(global as { gc?: unknown }).gc ? '' : ' (run with --expose-gc for a clean baseline)'}`);
  }
  obs.disconnect();
  if (sink === -1) console.log('');
}

/** Mean number of rules the matcher tests per packet (after the prefilter, up to the first match). */
export function candidates(st: SteerStage, ctxs: PacketContext[]): number {
  const m = (st as unknown as { matcher: { tested(c: PacketContext): number } }).matcher;
  return ctxs.reduce((n, c) => n + m.tested(c), 0) / ctxs.length;
}

void main();
