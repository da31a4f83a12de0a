/**
 * Packet layer: classify() rate per protocol and for a realistic gateway mix, with `benchmark`, plus
 * a heap/GC check that classification allocates nothing.
 *   node --expose-gc dist/bench/packet.bench.js [--quick]
 * Packets are real lab captures (test/captures) where there are some, built ones otherwise, laid out
 * in one slab at offsets as an NFQUEUE batch would be.
 */
import Benchmark from 'benchmark';
import { PerformanceObserver } from 'node:perf_hooks';
import { cpus, loadavg } from 'node:os';
import { Classified, classify, Kind } from '../src/packet/classify';
import { capturedPackets } from '../test/kit/packet';
import { ipv4Esp, ipv4Raw } from '../src/packet/build';
import { tcpRepr, ACK_FLAG, PSH } from '../src/packet/tcp';
import { ip4 } from '../src/packet/bytes';

const quick = process.argv.includes('--quick');
const gc = (): void => { (global as { gc?: () => void }).gc?.(); };

const ike = capturedPackets('ike-esp-natt.pcap');
const dhcp = capturedPackets('dhcp-inform-ack.pcap');
const A = ip4('198.51.100.7'), B = ip4('203.0.113.1');
const seg = new Uint8Array(tcpRepr.encodingLength({ srcPort: 443, dstPort: 50000, flags: ACK_FLAG | PSH, options: new Uint8Array(12), payload: new Uint8Array(1200) }));
tcpRepr.encode({ srcPort: 443, dstPort: 50000, flags: ACK_FLAG | PSH, options: new Uint8Array(12), payload: new Uint8Array(1200) }, seg, 0, { src: A, dst: B });

const SAMPLES: Record<string, Uint8Array> = {
  'ESP (proto 50)': ipv4Esp({ src: A, dst: B }, { spi: 0xc0ffee01, seq: 7, payload: new Uint8Array(1400) }),
  'ESP-in-UDP 4500': ike[4]!.ip,
  'IKE_SA_INIT on 500': ike[0]!.ip,
  'IKE_AUTH on 4500 (marker)': ike[2]!.ip,
  'DHCPINFORM (options walk)': dhcp[0]!.ip,
  'DHCPACK (options walk)': dhcp[1]!.ip,
  'TCP': ipv4Raw({ src: A, dst: B, protocol: 6 }, seg),
};

/** Realistic mix for a VPN gateway: mostly ESP data, some TCP, a little IKE and DHCP (per 100). */
const MIX: [string, number][] = [['ESP-in-UDP 4500', 40], ['ESP (proto 50)', 25], ['TCP', 25],
  ['IKE_SA_INIT on 500', 3], ['IKE_AUTH on 4500 (marker)', 2], ['DHCPINFORM (options walk)', 3], ['DHCPACK (options walk)', 2]];

/** One slab with `count` packets, 64 bytes of head-room before each, like a batch. */
function slab(names: string[]): { bytes: Uint8Array; off: Int32Array; len: Int32Array } {
  const total = names.reduce((n, k) => n + 64 + SAMPLES[k]!.length, 0);
  const bytes = new Uint8Array(total);
  const off = new Int32Array(names.length), len = new Int32Array(names.length);
  let p = 0;
  names.forEach((k, i) => { p += 64; bytes.set(SAMPLES[k]!, p); off[i] = p; len[i] = SAMPLES[k]!.length; p += SAMPLES[k]!.length; });
  return { bytes, off, len };
}

function mixNames(): string[] {
  const names: string[] = [];
  for (const [k, w] of MIX) for (let i = 0; i < w; i++) names.push(k);
  // Deterministic shuffle so the branch pattern is not a run of identical packets.
  let s = 12345;
  for (let i = names.length - 1; i > 0; i--) { s = (s * 1103515245 + 12345) >>> 0; const j = s % (i + 1); [names[i], names[j]] = [names[j]!, names[i]!]; }
  return names;
}

const c = new Classified();
let sink = 0;

function loop(s: { bytes: Uint8Array; off: Int32Array; len: Int32Array }, n: number): number {
  return timed(s, n).wall;
}

/** Wall and CPU ns per packet; cpu/wall is the share of a core this process actually got. */
function timed(s: { bytes: Uint8Array; off: Int32Array; len: Int32Array }, n: number, baseline = false): { wall: number; cpu: number } {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const m = s.off.length;
  const b = s.bytes;
  if (baseline) {
    // Same loop shape, reading two header bytes per packet: the floor any classifier pays.
    for (let i = 0, j = 0; i < n; i++) { sink += b[s.off[j]!]! + b[s.off[j]! + 9]!; if (++j === m) j = 0; }
  } else {
    for (let i = 0, j = 0; i < n; i++) {
      classify(c, b, s.off[j]!, s.len[j]!);
      sink += c.kind;
      if (++j === m) j = 0;
    }
  }
  const wall = Number(process.hrtime.bigint() - t0) / n;
  const cu = process.cpuUsage(c0);
  return { wall, cpu: ((cu.user + cu.system) * 1000) / n };
}

/** heapUsed delta and GC count over n packets after warm-up (JIT tiers settle first); best of 3
 * rounds, since a concurrent compile can allocate during one of them. Per-packet allocation of even
 * one 16-byte HeapNumber would show as ≥ 16 MB and several scavenges per round. */
async function allocationCheck(n: number): Promise<{ heapDelta: number; gcs: number }> {
  const s = slab(mixNames());
  loop(s, 2_000_000);
  let gcs = 0;
  const obs = new PerformanceObserver((list) => { gcs += list.getEntries().length; });
  obs.observe({ entryTypes: ['gc'] });
  let best = { heapDelta: Infinity, gcs: Infinity };
  for (let round = 0; round < 3; round++) {
    gc(); gc();
    await new Promise((r) => setTimeout(r, 20));
    gcs = 0;
    const h0 = process.memoryUsage().heapUsed;
    loop(s, n);
    const h1 = process.memoryUsage().heapUsed;
    await new Promise((r) => setTimeout(r, 20));
    if (h1 - h0 < best.heapDelta) best = { heapDelta: h1 - h0, gcs };
  }
  obs.disconnect();
  return best;
}

async function main(): Promise<void> {
  const n = quick ? 300_000 : 3_000_000;
  console.log(`# classify(): ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  // 1. benchmark.js, one packet per op.
  const suite = new Benchmark.Suite();
  const rows: [string, number, number][] = [];
  for (const [name, pkt] of Object.entries(SAMPLES)) {
    const s = slab([name]);
    suite.add(name, () => { classify(c, s.bytes, s.off[0]!, s.len[0]!); sink += c.kind; }, { minSamples: quick ? 5 : 20, maxTime: quick ? 0.5 : 2 });
    void pkt;
  }
  const mix = slab(mixNames());
  let j = 0;
  suite.add('MIX (40 ESP-in-UDP, 25 ESP, 25 TCP, 5 IKE, 5 DHCP)', () => {
    classify(c, mix.bytes, mix.off[j]!, mix.len[j]!); sink += c.kind; if (++j === mix.off.length) j = 0;
  }, { minSamples: quick ? 5 : 20, maxTime: quick ? 0.5 : 3 });
  suite.on('cycle', (e: Benchmark.Event) => {
    const t = e.target as Benchmark.Target & { hz: number; stats: { rme: number } };
    rows.push([String(t.name), t.hz, t.stats.rme]);
  });
  suite.run();
  console.log('\n| packet (benchmark.js, 1 packet per op) | M packets/s | ns/packet | ± |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const [name, hz, rme] of rows) console.log(`| ${name} | ${(hz / 1e6).toFixed(2)} | ${(1e9 / hz).toFixed(1)} | ${rme.toFixed(1)}% |`);

  // 2. Plain loop over a batch-like slab (the engine's shape), best of 3, with a same-run baseline
  //    and the CPU share actually received (the lab machine is shared).
  console.log(`\n| plain loop over a slab, ${n} packets, best of 3 | ns/packet (wall) | ns/packet (CPU) | M packets/s (CPU) | CPU share |`);
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const [name, sl, base] of [['baseline: 2 header bytes per packet', mix, true], ['classify, MIX', mix, false],
    ...Object.keys(SAMPLES).map((k) => [`classify, ${k}`, slab([k]), false])] as [string, ReturnType<typeof slab>, boolean][]) {
    timed(sl, 200_000, base);
    const r = [timed(sl, n, base), timed(sl, n, base), timed(sl, n, base)].sort((x, y) => x.cpu - y.cpu)[0]!;
    console.log(`| ${name} | ${r.wall.toFixed(1)} | ${r.cpu.toFixed(1)} | ${(1e3 / r.cpu).toFixed(1)} | ${Math.round((100 * r.cpu) / r.wall)}% |`);
  }
  // 3. Allocation check over 1M packets.
  // If anything were allocated per packet the delta would grow with the count (≥ 16 B/packet) and
  // scavenges would run; a constant delta (a new-space page, JIT data) is not per-packet.
  for (const count of [1_000_000, 5_000_000]) {
    const a = await allocationCheck(count);
    console.log(`Allocation check over ${count} mixed packets: heapUsed delta ${a.heapDelta} bytes ` +
      `(${(a.heapDelta / count).toFixed(3)} B/packet), GC events ${a.gcs}` +
      `${(global as { gc?: unknown }).gc ? '' : ' (run with --expose-gc for a clean baseline)'}`);
  }
  if (sink === 0 || Kind.OTHER !== 0) console.log('');
}

void main();
