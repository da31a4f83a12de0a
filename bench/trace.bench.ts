/**
 * What `sluice trace` costs the batch loop, paired round by round in one process against a build
 * without any trace code (BASE_DIST: another checkout's compiled dist, e.g. the merge base):
 *   node dist/bench/trace.bench.js BASE_DIST [--rounds N]
 * Arms, each one 64-packet batch of 64-byte UDP through 4 stages (3 look and pass, 1 accepts):
 *   base     Engine.handleBatch of BASE_DIST (no trace code at all)
 *   idle     this build, nobody tracing (engine.tracer null: one check per batch)   ← "zero cost"
 *   miss     this build, one trace running whose filter matches none of the packets
 *   all      this build, one trace taking every packet (records drained after each batch)
 * Each round times the same number of batches per arm in rotating order; ratio = arm ns per packet
 * / base ns per packet of the same round; printed: median of the per-round ratios (min, max).
 */
import { cpus, loadavg } from 'node:os';
import { Interfaces } from '../src/io/interfaces';
import * as mine from '../src/engine/engine';
import { loadBase, batch, stages, BATCH, type EngineModule } from './ab-rig';
import { Tracer } from '../src/engine/trace';
import { compileFilter } from '../src/engine/trace-filter';
import { numArg } from './args';

const baseDist = process.argv[2];
if (!baseDist || baseDist.startsWith('--')) { process.stderr.write('usage: trace.bench.js BASE_DIST [--rounds N]\n'); process.exit(2); }
const ROUNDS = numArg('--rounds', 21);
const { base, baseIfs } = loadBase(baseDist);


function engineOf(mod: EngineModule, ifs: typeof Interfaces): { e: mine.Engine; src: number } {
  const e = new mod.Engine({ held: { max: 1024, timeoutMs: 1000, defaultVerdict: 'accept' }, interfaces: ifs.fromList([]) });
  const src = e.addSource({ release: () => {} }, 1, { defaultVerdict: 'accept', onInvalid: 'accept' });
  e.setPipeline(stages() as never);
  return { e, src };
}

function arm(mod: EngineModule, ifs: typeof Interfaces, trace: 'none' | 'miss' | 'all'): () => void {
  const { e, src } = engineOf(mod, ifs);
  const b = batch();
  if (trace === 'none') return () => e.handleBatch(src, b);
  const tracer = new Tracer(e);
  const sub = tracer.subscribe(trace === 'miss' ? compileFilter('proto=esp', Interfaces.fromList([])).filter : null, { max: 1 << 16 });
  return () => { e.handleBatch(src, b); sub.take(BATCH); };
}

const arms: [string, () => void][] = [
  ['base', arm(base, baseIfs.Interfaces, 'none')],
  ['idle', arm(mine, Interfaces, 'none')],
  ['miss', arm(mine, Interfaces, 'miss')],
  ['all', arm(mine, Interfaces, 'all')],
];

function nsPerPacket(run: () => void, batches: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < batches; i++) run();
  return Number(process.hrtime.bigint() - t0) / (batches * BATCH);
}

for (let i = 0; i < 2000; i++) for (const [, run] of arms) run(); // warm-up: all optimized
const N = 3000;
const ns = new Map<string, number[]>(arms.map(([n]) => [n, []]));
const ratios = new Map<string, number[]>(arms.map(([n]) => [n, []]));
for (let r = 0; r < ROUNDS; r++) {
  const order = arms.map((_, i) => arms[(i + r) % arms.length]!);
  const got = new Map<string, number>();
  for (const [name, run] of order) got.set(name, nsPerPacket(run, name === 'all' ? N / 10 : N));
  for (const [name] of arms) { ns.get(name)!.push(got.get(name)!); ratios.get(name)!.push(got.get(name)! / got.get('base')!); }
}
const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
process.stdout.write(`${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${ROUNDS} rounds of ${N} batches x ${BATCH} packets (all: ${N / 10}), 4 stages\n`);
for (const [name] of arms) {
  const rs = ratios.get(name)!;
  process.stdout.write(`${name.padEnd(5)} ${median(ns.get(name)!).toFixed(1).padStart(8)} ns/packet  ratio to base ${median(rs).toFixed(3)} (min ${Math.min(...rs).toFixed(3)}, max ${Math.max(...rs).toFixed(3)})\n`);
}
