/**
 * Engine.handleBatch of this build against another build's, paired round by round in one process:
 * for a change to the engine's hot path (e.g. the per-stage failure handling), the median of the
 * per-round ratios says what it costs.
 *   node dist/bench/engine-ab.bench.js BASE_DIST [--rounds N]
 * BASE_DIST is another checkout's compiled `dist` (e.g. `git worktree add /tmp/base main && cd
 * /tmp/base && npm ci && npx tsc -p .` → /tmp/base/dist). Each round times the same number of 64-packet
 * batches (64-byte UDP, three pass-through stages and a deciding fourth) through both engines, in
 * alternating order; ratio = this build's ns per packet / the base's (> 1: slower).
 */
import { cpus, loadavg } from 'node:os';
import { Interfaces } from '../src/io/interfaces';
import * as mine from '../src/engine/engine';
import { loadBase, batch, stages, BATCH, type EngineModule } from './ab-rig';

const baseDist = process.argv[2];
if (!baseDist) { process.stderr.write('usage: engine-ab.bench.js BASE_DIST [--rounds N]\n'); process.exit(2); }
const roundsArg = process.argv.indexOf('--rounds');
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 15;
const { base, baseIfs } = loadBase(baseDist);


function runner(mod: EngineModule, ifs: typeof Interfaces): () => void {
  const e = new mod.Engine({ held: { max: 1024, timeoutMs: 1000, defaultVerdict: 'accept' }, interfaces: ifs.fromList([]) });
  const src = e.addSource({ release: () => {} }, 1, { defaultVerdict: 'accept', onInvalid: 'accept' });
  e.setPipeline(stages() as never);
  const b = batch();
  return () => e.handleBatch(src, b);
}

const runMine = runner(mine, Interfaces);
const runBase = runner(base, baseIfs.Interfaces);

function nsPerPacket(run: () => void, batches: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < batches; i++) run();
  return Number(process.hrtime.bigint() - t0) / (batches * BATCH);
}

for (let i = 0; i < 2000; i++) { runMine(); runBase(); } // warm-up: both optimized
const N = 5000;
const ratios: number[] = [];
const mineNs: number[] = [], baseNs: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  let a: number, b: number;
  if (r % 2 === 0) { a = nsPerPacket(runMine, N); b = nsPerPacket(runBase, N); } else { b = nsPerPacket(runBase, N); a = nsPerPacket(runMine, N); }
  mineNs.push(a); baseNs.push(b); ratios.push(a / b);
}
const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
process.stdout.write(`${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${ROUNDS} rounds of ${N} batches x ${BATCH} packets, 4 stages\n`);
process.stdout.write(`this build: ${median(mineNs).toFixed(1)} ns/packet (median), base: ${median(baseNs).toFixed(1)} ns/packet\n`);
process.stdout.write(`ratio this/base, median of per-round ratios: ${median(ratios).toFixed(3)} (min ${Math.min(...ratios).toFixed(3)}, max ${Math.max(...ratios).toFixed(3)})\n`);
