/**
 * Steering: first-match classification rate with 10 to 10,000 rules and a 100,000-element map on a
 * realistic gateway packet mix, per core; the tuple-space classifier the stage uses (src/select/
 * match.ts) against the bit-vector classifier it replaced (src/select/bitvector.ts) in the same run,
 * paired round by round (median of per-round ratios); compile time and heap at 10k and 100k rules;
 * a heap check (0 bytes per packet).
 *   node --expose-gc dist/bench/steer.bench.js [--quick]
 * The loop has the engine's shape (one reused context, classify() per packet, then the stage); the
 * same loop without the stage is the baseline, and the steer figure is the difference.
 * The rule sets look like a gateway's: service rules by port and source prefix, prefix rules, rules
 * on interface globs, marks, ranges, IKE/DHCP selectors; most packets (ESP data) match late or never.
 */
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { loadConfig } from '../src/config/load';
import { loadConfigOffThread } from '../src/config/offthread';
import { PerformanceObserver } from 'node:perf_hooks';
import { steerConfigSchema } from '../src/steer/schema';
import { SteerStage } from '../src/steer/stage';
import type { CompiledSteer } from '../src/steer/compile';
import { BitvectorMatcher } from '../src/select/bitvector';
import { SMALL_RULE_SET } from '../src/select/match';
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
function mix(source?: () => number): Batch {
  const ike = capturedPackets('ike-esp-natt.pcap'), dhcp = capturedPackets('dhcp-inform-ack.pcap');
  const lan = source ?? ((): number => ip4(rnd(2) ? `${NETS[rnd(NETS.length)]}.${1 + rnd(250)}` : `10.${rnd(250)}.${rnd(250)}.${1 + rnd(250)}`));
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
function timed(st: SteerStage | null, b: Batch, n: number): number {
  const d = new Decision();
  const m = b.off.length;
  ctx.bytes = b.bytes;
  const c0 = process.cpuUsage();
  for (let i = 0, j = 0; i < n; i++) {
    ctx.offset = b.off[j]!; ctx.length = b.len[j]!; ctx.indev = b.indev[j]!; ctx.hook = b.hook[j]!; ctx.mark = b.mark[j]!;
    classify(info, b.bytes, ctx.offset, ctx.length);
    d.reset();
    if (st !== null) st.process(ctx, d);
    sink = (sink + d.verdict + (d.markValue & 0xff) + info.kind) & 0xffff; // stays a small integer
    if (++j === m) j = 0;
  }
  const cu = process.cpuUsage(c0);
  return ((cu.user + cu.system) * 1000) / n; // CPU ns per packet
}

/** Packets for about `ms` of CPU at the given cost per packet (at least one batch). */
const budget = (nsPerPacket: number, ms: number): number => Math.max(1000, Math.round((ms * 1e6) / Math.max(nsPerPacket, 1)));
const median = (xs: number[]): number => { const a = [...xs].sort((x, y) => x - y); return a.length % 2 ? a[a.length >> 1]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2; };
const mb = (): number => { gc(); gc(); const m = process.memoryUsage(); return (m.heapUsed + m.arrayBuffers) / 1048576; };

/** The same stage with the bit-vector classifier in place of the tuple-space one (same rows for plain rules). */
function withReference(st: SteerStage): SteerStage {
  const ref = Object.create(st) as SteerStage;
  (ref as unknown as { matcher: BitvectorMatcher }).matcher = new BitvectorMatcher((st.compiled as CompiledSteer).sels);
  return ref;
}

interface Probe { first(c: PacketContext): number; lastTested: number; tupleCount: number }
const probeOf = (st: SteerStage): Probe => (st as unknown as { matcher: Probe }).matcher;

function stats(st: SteerStage, batch: Batch): { matched: number; tested: number } {
  const probe = probeOf(st);
  let matched = 0, tested = 0;
  for (let j = 0; j < batch.off.length; j++) {
    ctx.offset = batch.off[j]!; ctx.length = batch.len[j]!; ctx.indev = batch.indev[j]!; ctx.hook = batch.hook[j]!; ctx.mark = batch.mark[j]!;
    classify(info, batch.bytes, ctx.offset, ctx.length);
    if (probe.first(ctx) >= 0) matched++;
    tested += probe.lastTested;
  }
  return { matched: (100 * matched) / batch.off.length, tested: tested / batch.off.length };
}

async function main(): Promise<void> {
  const rounds = quick ? 3 : 5, ms = quick ? 60 : 250;
  console.log(`# steer: ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${rounds} paired rounds, ~${ms} ms CPU per timed run`);
  const batch = mix();
  timed(null, batch, 200_000);
  console.log('\n| rules | tuples | rules tested per packet | matched % | steer ns/packet (tuple) | M packets/s per core | steer ns/packet (bit-vector) | bit-vector / tuple (median of rounds) | compile ms tuple / bit-vector |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  let st10k: SteerStage | null = null;
  for (const count of [10, 100, 1000, 10000]) {
    seed = 42 + count;
    const cfg = steerConfigSchema.parse({ rules: rules(count) });
    let t0 = process.hrtime.bigint();
    const st = new SteerStage(cfg);
    const compileMs = Number(process.hrtime.bigint() - t0) / 1e6;
    t0 = process.hrtime.bigint();
    const ref = withReference(st);
    const refMs = Number(process.hrtime.bigint() - t0) / 1e6;
    st.init(fakeServices(ifaces)); ref.init(fakeServices(ifaces));
    const { matched, tested } = stats(st, batch);
    // Warm up and size the runs.
    const b0 = timed(null, batch, 300_000), s0 = timed(st, batch, 100_000), r0 = timed(ref, batch, Math.max(1000, Math.round(2e8 / (count * 100 + 1))));
    const nB = budget(b0, ms), nS = budget(s0, ms), nR = budget(r0, ms);
    const tupleNs: number[] = [], refNs: number[] = [], ratio: number[] = [];
    for (let k = 0; k < rounds; k++) {
      const base = timed(null, batch, nB);
      const a = Math.max(timed(st, batch, nS) - base, 0.1), b = Math.max(timed(ref, batch, nR) - base, 0.1);
      tupleNs.push(a); refNs.push(b); ratio.push(b / a);
    }
    const a = median(tupleNs), b = median(refNs);
    console.log(`| ${count} | ${count <= SMALL_RULE_SET ? 'bit-vector' : probeOf(st).tupleCount} | ${count <= SMALL_RULE_SET ? '' : tested.toFixed(1)} | ${Math.round(matched)} | ${a.toFixed(1)} | ${(1e3 / a).toFixed(2)} | ${b.toFixed(1)} | ${median(ratio).toFixed(2)} | ${compileMs.toFixed(0)} / ${refMs.toFixed(0)} |`);
    if (count === 10000) st10k = st;
  }

  // A 100,000-element verdict map (src /32 → mark) as the only rule: half the TCP sources are in the
  // map; the figure is the lookup and the action. The reference is a 1,000-element map (flat: 1.0).
  console.log('\n| map elements | lookup: steer ns/packet | M packets/s per core | vs 1,000-element map (median of rounds) | parse + build ms | heap MB |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
  const mapStage = (elements: number): { st: SteerStage; ms: number; mb: number } => {
    const el: Record<string, string> = {};
    for (let i = 0; i < elements; i++) { const a = 0x0a640000 + i * 3; el[`10.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`] = `0x${((i % 250) + 1).toString(16)}/0xff`; }
    seed = 142;
    const h0 = mb(), t0 = process.hrtime.bigint();
    const st = new SteerStage(steerConfigSchema.parse({ maps: { clients: { key: 'src', elements: el } },
      rules: [{ name: 'per-client', match: {}, action: { map: 'clients', then: 'continue' } }] }));
    const t = Number(process.hrtime.bigint() - t0) / 1e6;
    st.init(fakeServices(ifaces));
    return { st, ms: t, mb: mb() - h0 };
  };
  const inMap = (n: number) => (): number => (rnd(2) ? (0x0a640000 + rnd(n) * 3) >>> 0 : ip4(`10.${rnd(250)}.${rnd(250)}.${1 + rnd(250)}`));
  const big = mapStage(100_000), small = mapStage(1000);
  const mixBig = mix(inMap(100_000)), mixSmall = mix(inMap(1000));
  const nB = budget(timed(null, mixBig, 300_000), ms), nS = budget(timed(big.st, mixBig, 300_000) - 20, ms);
  const bigNs: number[] = [], ratio: number[] = [];
  for (let k = 0; k < rounds; k++) {
    const x = Math.max(timed(big.st, mixBig, nS) - timed(null, mixBig, nB), 0.1);
    const y = Math.max(timed(small.st, mixSmall, nS) - timed(null, mixSmall, nB), 0.1);
    bigNs.push(x); ratio.push(x / y);
  }
  console.log(`| 100000 | ${median(bigNs).toFixed(1)} | ${(1e3 / median(bigNs)).toFixed(2)} | ${median(ratio).toFixed(2)} | ${big.ms.toFixed(0)} | ${big.mb.toFixed(1)} |`);
  console.log(`| 1000 | | | | ${small.ms.toFixed(0)} | ${small.mb.toFixed(1)} |`);

  // Compile time and memory: schema parse (with its compile check) and stage build, 10k and 100k rules.
  console.log('\n| rules | schema parse ms | stage build ms | heap MB (stage) |');
  console.log('| ---: | ---: | ---: | ---: |');
  for (const count of [10_000, 100_000]) {
    seed = 42 + count;
    const input = { rules: rules(count) };
    let t0 = process.hrtime.bigint();
    const cfg = steerConfigSchema.parse(input);
    const parseMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const h0 = mb();
    t0 = process.hrtime.bigint();
    const st = new SteerStage(cfg);
    const buildMs = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(`| ${count} | ${parseMs.toFixed(0)} | ${buildMs.toFixed(0)} | ${(mb() - h0).toFixed(1)} |`);
    if (st.compiled.names.length !== count) throw new Error('rule count');
  }

  // Reload of a 10,000-rule config: how long the event loop (the packet loop) stalls. On the loop:
  // loadConfig + stage build; with the reload path (config parsed in a worker): the longest gap
  // between 1 ms timer ticks while the worker runs, then the stage build, which stays on the loop.
  {
    seed = 10042;
    const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
    const file = join(dir, 'steer-10k.yaml');
    writeFileSync(file, stringify({ queues: [{ num: 1 }], steer: { rules: rules(10_000) } }));
    const rows: string[] = [];
    for (let k = 0; k < 3; k++) {
      let t0 = process.hrtime.bigint();
      const cfg = await loadConfig(file);
      const onLoop = Number(process.hrtime.bigint() - t0) / 1e6;
      let last = performance.now(), gap = 0;
      const tick = setInterval(() => { const now = performance.now(); gap = Math.max(gap, now - last); last = now; }, 1);
      t0 = process.hrtime.bigint();
      await loadConfigOffThread(file);
      const off = Number(process.hrtime.bigint() - t0) / 1e6;
      clearInterval(tick);
      t0 = process.hrtime.bigint();
      new SteerStage(cfg.steer!);
      const build = Number(process.hrtime.bigint() - t0) / 1e6;
      // The reload path: the stage compiled in slices (SteerStage.sliced), timer ticking meanwhile.
      last = performance.now(); let gap2 = 0;
      const tick2 = setInterval(() => { const now = performance.now(); gap2 = Math.max(gap2, now - last); last = now; }, 1);
      t0 = process.hrtime.bigint();
      await SteerStage.sliced(cfg.steer!);
      const sliced = Number(process.hrtime.bigint() - t0) / 1e6;
      clearInterval(tick2);
      rows.push(`| ${k + 1} | ${onLoop.toFixed(0)} | ${off.toFixed(0)} | ${gap.toFixed(1)} | ${build.toFixed(0)} | ${sliced.toFixed(0)} | ${gap2.toFixed(1)} |`);
    }
    rmSync(dir, { recursive: true, force: true });
    console.log('\n| reload 10k rules, round | loadConfig on the loop ms | in the worker ms (wall) | longest loop gap meanwhile ms | stage build at once ms | stage build in slices ms (wall) | longest loop gap meanwhile ms |');
    console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of rows) console.log(r);
  }

  // Allocation check: 10,000 rules. Per-packet allocation would grow with the count (≥ 16 B per boxed
  // number) and run scavenges; a constant delta (JIT code, feedback) does not. Best of 3 rounds.
  const st = st10k!;
  timed(st, batch, 1_000_000);
  let gcs = 0;
  const obs = new PerformanceObserver((list) => { gcs += list.getEntries().length; });
  obs.observe({ entryTypes: ['gc'] });
  for (const count of [1_000_000, 4_000_000]) {
    let bestRun = { delta: Infinity, gcs: 0 };
    for (let round = 0; round < 3; round++) {
      gc(); gc();
      await new Promise((r) => setTimeout(r, 20));
      gcs = 0;
      const h0 = process.memoryUsage().heapUsed;
      timed(st, batch, count);
      const h1 = process.memoryUsage().heapUsed;
      await new Promise((r) => setTimeout(r, 20));
      if (h1 - h0 < bestRun.delta) bestRun = { delta: h1 - h0, gcs };
    }
    console.log(`Allocation check (10,000 rules, ${count} packets): heapUsed delta ${bestRun.delta} bytes ` +
      `(${(bestRun.delta / count).toFixed(3)} B/packet), GC events ${bestRun.gcs}` +
      `${(global as { gc?: unknown }).gc ? '' : ' (run with --expose-gc for a clean baseline)'}`);
  }
  obs.disconnect();
  if (sink === -1) console.log('');
}

void main();
