/**
 * What the NAT journal's appends cost on the packet thread: a burst of new SAs (outbound IKE_SA_INIT
 * from as many LAN hosts, each a new IKE SA, one journal line each), in 64-packet batches through
 * Engine.handleBatch, back to back. Per round, in rotating order, the same burst three ways: the
 * journal on the machine's disk (os.tmpdir()) written once per batch (batchEnd, as sluice runs),
 * the same with one write(2) per new SA (the stage's batch hooks hidden from the engine: how it was
 * before), and no journal (memory only). Reported: time per batch (median and longest), the
 * journal's cost per new SA (against no journal), and write(2) calls.
 *   node dist/bench/journal-burst.bench.js [--sas N] [--rounds R]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { M_CAPACITY, M_HOOK, M_ID, M_LENGTH, M_OFFSET, META_STRIDE, type Batch } from '../src/io/batch-layout';
import { Interfaces } from '../src/io/interfaces';
import { Engine } from '../src/engine/engine';
import { HOOK_POSTROUTING } from '../src/engine/stage';
import { natConfigSchema } from '../src/nat/config';
import { NatStage } from '../src/nat/stage';
import { IKE_SA_INIT, ike, ip } from '../test/kit/nat';
import { numArg } from './args';

const SAS = numArg('--sas', 10_000);
const ROUNDS = numArg('--rounds', 5);
const BATCH = 64;
const SLOT = 256;
const S = ip('198.51.100.10');

/** The burst's batches: packet i comes from host 10.16.0.0 + i with IKE SPI i + 1. */
function batches(n: number): Batch[] {
  const out: Batch[] = [];
  for (let first = 0; first < n; first += BATCH) {
    const count = Math.min(BATCH, n - first);
    const slab = new Uint8Array(SLOT * count);
    const meta = new Uint32Array(META_STRIDE * count);
    for (let k = 0; k < count; k++) {
      const p = ike((ip('10.16.0.0') + first + k) >>> 0, S, { ispi: BigInt(first + k + 1), exchange: IKE_SA_INIT });
      slab.set(p, k * SLOT);
      const b = k * META_STRIDE;
      meta[b + M_ID] = first + k + 1;
      meta[b + M_OFFSET] = k * SLOT;
      meta[b + M_LENGTH] = p.length;
      meta[b + M_CAPACITY] = SLOT;
      meta[b + M_HOOK] = HOOK_POSTROUTING;
    }
    out.push({ slab, meta, count });
  }
  return out;
}

type Mode = 'batched' | 'per-SA' | 'none';
interface Burst { perBatchUs: number[]; totalMs: number; sas: number; writes: number }

async function burst(mode: Mode): Promise<Burst> {
  const journal = mode !== 'none';
  const dir = mkdtempSync(join(tmpdir(), 'sluice-burst-'));
  const cfg = natConfigSchema.parse({
    public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path: journal ? join(dir, 'nat.journal') : null },
    limits: { max_sas: 1 << 20, max_sas_per_host: 1 << 10, max_hosts_per_server: 1 << 20, max_hosts: 1 << 20 },
  });
  const stage = new NatStage(cfg, { stateDir: dir });
  if (mode === 'per-SA') Object.assign(stage, { batchStart: undefined, batchEnd: undefined });
  const engine = new Engine({ held: { max: 16, timeoutMs: 1000, defaultVerdict: 'drop' }, interfaces: Interfaces.fromList([]), tickMs: 100 });
  const src = engine.addSource({ release() {} }, 0, { defaultVerdict: 'accept', onInvalid: 'drop' });
  engine.setPipeline([stage]);
  await stage.persist?.compact(); // the start-up compaction, out of the way
  const bs = batches(SAS);
  const perBatchUs: number[] = [];
  const t0 = performance.now();
  for (const b of bs) {
    const a = performance.now();
    engine.handleBatch(src, b);
    perBatchUs.push((performance.now() - a) * 1000);
  }
  const totalMs = performance.now() - t0;
  const sas = stage.state.sas.count;
  const writes = stage.persist?.journal.appendWrites ?? 0;
  await stage.close();
  rmSync(dir, { recursive: true, force: true });
  return { perBatchUs, totalMs, sas, writes };
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2; };

async function main(): Promise<void> {
  console.log(`# node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${SAS} new SAs in batches of ${BATCH}, ${ROUNDS} rounds`);
  const modes: Mode[] = ['batched', 'per-SA', 'none'];
  for (const m of modes) await burst(m); // warm-up (JIT)
  const cost = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  for (let r = 0; r < ROUNDS; r++) {
    const res = new Map<Mode, Burst>();
    for (let k = 0; k < modes.length; k++) { const m = modes[(r + k) % modes.length]!; res.set(m, await burst(m)); }
    const none = res.get('none')!;
    const show = (m: Mode): string => {
      const b = res.get(m)!;
      const perSa = ((b.totalMs - none.totalMs) * 1000) / SAS;
      if (m !== 'none') cost.get(m)!.push(perSa);
      return `${m} ${b.totalMs.toFixed(1)} ms (batch median ${median(b.perBatchUs).toFixed(0)} µs, longest ${Math.max(...b.perBatchUs).toFixed(0)} µs`
        + `${m !== 'none' ? `; ${b.writes} writes; ${perSa.toFixed(2)} µs per SA over none` : ''}${b.sas !== SAS ? `; ${b.sas} SAs!` : ''})`;
    };
    console.log(`round ${r + 1}: ${modes.map(show).join(', ')}`);
  }
  console.log(`journal cost per new SA over none, median of rounds: batched ${median(cost.get('batched')!).toFixed(2)} µs, per-SA ${median(cost.get('per-SA')!).toFixed(2)} µs; load ${loadavg()[0]!.toFixed(2)}`);
}

void main();
