/**
 * NAT stage cost per packet (lookup + rewrite + checksum, classification excluded and measured apart)
 * and memory per SA up to 1M SAs.   node --expose-gc dist/bench/nat.bench.js [--quick]
 */
import { natConfigSchema } from '../src/nat/config';
import { NatStage } from '../src/nat/stage';
import { SaTable, SaKind } from '../src/nat/table';
import { Decision } from '../src/engine/stage';
import { Classified, classify } from '../src/packet/classify';
import { HOOK_POSTROUTING, HOOK_PREROUTING } from '../src/engine/stage';
import { FakeServices, ip, esp, espInUdp, ike, out, inb, IKE_SA_INIT, IKE_AUTH } from '../test/kit/nat';

const quick = process.argv.includes('--quick');
const gc = (): void => { (global as { gc?: () => void }).gc?.(); };

function setup(nSas: number): { st: NatStage; fs: FakeServices } {
  const cfg = natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path: null },
    limits: { max_sas: Math.max(1024, nSas * 2), max_sas_per_host: 1 << 20 } });
  const st = new NatStage(cfg);
  const fs = new FakeServices();
  st.init(fs);
  // Background SAs so lookups run against a table of realistic size.
  const s = st.state;
  const h = s.host(ip('10.9.0.1'), fs.time);
  for (let i = 0; i < nSas; i++) s.addSa(SaKind.ESP_IN, 0, ip('198.51.100.20') + (i & 1023), h, (Math.imul(i, 2654435761) + 7) >>> 0, 0, 0, fs.time, false);
  return { st, fs };
}

function perPacket(st: NatStage, pkt: Uint8Array, hook: number, n: number): { nat: number; classify: number } {
  const info = new Classified();
  const d = new Decision();
  const ctx = { bytes: pkt, offset: 0, length: pkt.length, capacity: pkt.length, mark: 0, indev: 1, outdev: 2, hook, queue: 0, info };
  const src = pkt.slice();
  // Restore the original addresses each time so every iteration really rewrites (12..19 = src, dst).
  const loop = (withNat: boolean, count: number): number => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      pkt.set(src.subarray(0, 28));
      classify(info, pkt, 0, pkt.length);
      if (withNat) { d.reset(); st.process(ctx, d); }
    }
    return Number(process.hrtime.bigint() - t0) / count;
  };
  loop(true, 50_000); loop(false, 50_000);
  const base = Math.min(loop(false, n), loop(false, n));
  const full = Math.min(loop(true, n), loop(true, n));
  return { nat: full - base, classify: base };
}

function main(): void {
  const PUB = ip('203.0.113.1'), S = ip('198.51.100.10'), H = ip('10.0.0.11');
  const n = quick ? 200_000 : 2_000_000;
  console.log('# Memory per SA (SaTable + index; heapUsed + arrayBuffers after GC)');
  console.log('| SAs | MB measured | bytes per SA | table arrays MB |');
  console.log('| ---: | ---: | ---: | ---: |');
  for (const size of quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000]) {
    gc();
    const m0 = process.memoryUsage();
    const t = new SaTable(size);
    for (let i = 0; i < size; i++) t.add(SaKind.ESP_IN, 0, 0xc6336400 + (i & 255), 0x0a000000 + (i >>> 4), (Math.imul(i, 2654435761) + 1) >>> 0, 0, 0, 0, 0);
    gc();
    const m1 = process.memoryUsage();
    const bytes = (m1.heapUsed - m0.heapUsed) + (m1.arrayBuffers - m0.arrayBuffers);
    console.log(`| ${size} | ${(bytes / 1048576).toFixed(1)} | ${(bytes / size).toFixed(0)} | ${(t.byteLength / 1048576).toFixed(1)} |`);
    if (t.count !== size) throw new Error('table lost records');
  }

  console.log('\n# NAT stage, ns per packet (classification subtracted; minimum of 2 runs)');
  console.log('| SAs in table | outbound ESP | inbound ESP | inbound ESP-in-UDP (checksum) | inbound unknown SPI (drop) | classify alone |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const size of quick ? [1000, 100_000] : [1000, 100_000, 1_000_000]) {
    const { st, fs } = setup(size);
    out(st, fs, ike(H, S, { ispi: 0x1111n, exchange: IKE_SA_INIT }));
    out(st, fs, ike(H, S, { ispi: 0x1111n, rspi: 0x2222n, exchange: IKE_AUTH }));
    inb(st, fs, esp(S, PUB, 0xc0ffee01));
    out(st, fs, esp(H, S, 0xd00d0001));
    inb(st, fs, espInUdp(S, PUB, 0xc0ffee02)); // unknown after the window closed: pin it
    st.command('sa-pin', { host: '10.0.0.11', server: '198.51.100.10', spi: '0xc0ffee02' });
    const o = perPacket(st, esp(H, S, 0xd00d0001, 1, 1400), HOOK_POSTROUTING, n);
    const i = perPacket(st, esp(S, PUB, 0xc0ffee01, 1, 1400), HOOK_PREROUTING, n);
    const u = perPacket(st, espInUdp(S, PUB, 0xc0ffee02), HOOK_PREROUTING, n);
    const x = perPacket(st, esp(S, PUB, 0x0badf00d, 1, 100), HOOK_PREROUTING, n);
    console.log(`| ${size} | ${o.nat.toFixed(0)} | ${i.nat.toFixed(0)} | ${u.nat.toFixed(0)} | ${x.nat.toFixed(0)} | ${i.classify.toFixed(0)} |`);
  }
}

main();
