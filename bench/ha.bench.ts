/**
 * HA replication cost, in process over loopback TCP: full resync of N records (wall time, records/s,
 * the active's longest event-loop stall meanwhile against an idle baseline measured in the same run)
 * and the promotion's rebuild of the tables (one IKE record per two inbound ESP records).   node dist/bench/ha.bench.js [--sas N]
 */
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { natConfigSchema } from '../src/nat/config';
import { NatStage } from '../src/nat/stage';
import { SaKind } from '../src/nat/table';
import { haConfigSchema } from '../src/ha/config';
import { Ha } from '../src/ha';
import { FakeServices, ip } from '../test/kit/nat';
import { numArg } from './args';

const quiet = { info() {}, warn() {} };
const KEY = randomBytes(32);

function stage(n: number): NatStage {
  const st = new NatStage(natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path: null },
    limits: { max_sas: Math.max(1024, n * 2), max_sas_per_host: 1 << 20, max_hosts: 1 << 20, max_hosts_per_server: 1 << 20 } }));
  st.init(new FakeServices());
  return st;
}

async function port(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

async function stallMs(ms: number): Promise<number> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  await new Promise((r) => setTimeout(r, ms));
  h.disable();
  return h.max / 1e6;
}

async function run(n: number): Promise<void> {
  const a = stage(n), b = stage(n);
  const s = a.state;
  for (let i = 0; i < n; i++) {
    const h = s.host(ip('10.0.0.0') + (i >> 4), 0);
    // A realistic mix: one IKE SA per two inbound ESP SAs (the IKE records are what promotion re-adds).
    const kind = i % 3 === 0 ? SaKind.IKE : SaKind.ESP_IN;
    s.addSa(kind, 0, ip('198.51.100.20') + (i & 255), h, (Math.imul(i, 2654435761) + 7) >>> 0 || 1, kind === SaKind.IKE ? i + 1 : 0, 0, 0, true);
  }
  const pa = await port(), pb = await port();
  const cfg = (role: string, l: number, p: number) => haConfigSchema.parse({ role, listen: `127.0.0.1:${l}`, peers: [`127.0.0.1:${p}`], key_file: '-' });
  const ha = new Ha(cfg('active', pa, pb), quiet, KEY), hb = new Ha(cfg('standby', pb, pa), quiet, KEY);
  ha.attach(a); hb.attach(b);
  const idle = await stallMs(300);
  await hb.start();
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const t0 = performance.now();
  await ha.start();
  while (hb.counters.resyncs_received === 0) await new Promise((r) => setTimeout(r, 5));
  const dt = performance.now() - t0;
  h.disable();
  await ha.close();
  hb.promote();
  console.log(`${n} records: resync ${dt.toFixed(0)} ms (${(n / dt * 1000 / 1000).toFixed(0)} k records/s), `
    + `longest slice: active walk ${ha.longestSlices.walkMs.toFixed(1)} ms, standby apply ${hb.longestSlices.applyMs.toFixed(1)} ms; `
    + `longest event-loop delay ${(h.max / 1e6).toFixed(1)} ms (idle baseline ${idle.toFixed(1)} ms; both ends share this process), `
    + `promotion rebuild ${hb.lastPromoteMs.toFixed(1)} ms for ${hb.lastPromoteRecords} records`);
  await hb.close();
}

async function main(): Promise<void> {
  const sizes = process.argv.includes('--sas') ? [numArg('--sas', 10000)] : [1000, 10000, 100000];
  for (const n of sizes) await run(n);
}

main().catch((e) => { console.error(e); process.exit(1); });
