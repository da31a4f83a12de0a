/**
 * Long compiles in slices: a compiler written as a generator yields every few hundred rules; run
 * at once (start-up, `sluice check`) or in slices of a few milliseconds with the event loop — the
 * packet loop — running between them (reload of a large rule set).
 */
import { performance } from 'node:perf_hooks';

export type Steps<T> = Generator<void, T, void>;

/** Runs the steps to the end. */
export function runSteps<T>(g: Steps<T>): T {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
  }
}

/** Runs the steps, giving the event loop a turn whenever a slice has taken sliceMs. */
export async function runStepsSliced<T>(g: Steps<T>, sliceMs = 4): Promise<T> {
  let t = performance.now();
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
    if (performance.now() - t >= sliceMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      t = performance.now();
    }
  }
}
