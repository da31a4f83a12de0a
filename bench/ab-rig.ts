/**
 * The A/B rig of the engine benches (engine-ab.bench.ts, trace.bench.ts): another build's engine
 * loaded from its compiled dist, one 64-packet batch of 64-byte UDP, and four stages (three look
 * and pass, a fourth accepts; the stage objects satisfy both builds' Stage shapes).
 */
import { resolve } from 'node:path';
import { M_CAPACITY, M_ID, M_LENGTH, M_OFFSET, META_STRIDE, type Batch } from '../src/io/batch-layout';
import type { Interfaces } from '../src/io/interfaces';
import type * as mine from '../src/engine/engine';

export type EngineModule = typeof mine;

/** The engine and interface table of another checkout's compiled dist (BASE_DIST). */
export function loadBase(baseDist: string): { base: EngineModule; baseIfs: { Interfaces: typeof Interfaces } } {
  return {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    base: require(resolve(baseDist, 'src/engine/engine.js')) as EngineModule,
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    baseIfs: require(resolve(baseDist, 'src/io/interfaces.js')) as { Interfaces: typeof Interfaces },
  };
}

export const BATCH = 64, SLOT = 2048;

export function batch(): Batch {
  const slab = new Uint8Array(SLOT * BATCH);
  const meta = new Uint32Array(META_STRIDE * BATCH);
  for (let i = 0; i < BATCH; i++) {
    const o = i * SLOT + 64;
    slab.set([0x45, 0, 0, 50, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 2, 10, 2, 0, 2, 0x9c, 0x40, 0, 9, 0, 30, 0, 0], o);
    const m = i * META_STRIDE;
    meta[m + M_ID] = i + 1; meta[m + M_OFFSET] = o; meta[m + M_LENGTH] = 50; meta[m + M_CAPACITY] = SLOT - 64;
  }
  return { slab, meta, count: BATCH };
}

/** Three stages that look and pass, a fourth that accepts. */
export function stages(): { name: string; failure: 'open' | 'closed'; process(p: { info: { dport: number } }, d: { accept(): void }): void }[] {
  let x = 0;
  const look = (name: string, failure: 'open' | 'closed') => ({ name, failure, process(p: { info: { dport: number } }) { x += p.info.dport; } });
  return [look('a', 'closed'), look('b', 'open'), look('c', 'open'),
    { name: 'd', failure: 'closed', process(_p, d) { if (x >= 0) d.accept(); } }];
}
