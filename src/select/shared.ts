/**
 * Compiled classifiers as read-only images other threads can run (workers: N). An image holds the
 * compiled tables as typed arrays over SharedArrayBuffers, plus small plain values (counts, interface
 * globs); postMessage / workerData hand the buffers over without copying. The compiling thread makes
 * the image once; each worker wraps it in its own Matcher (Matcher.fromImage) whose per-thread parts
 * (interface bit caches, the packet key) are its own. Nobody writes an image after it is made: a
 * reload makes a new one, and each worker swaps its stage between two batches.
 */

export type TypedArray = Uint8Array | Uint32Array | Int32Array | Float64Array;

/** `a` in a SharedArrayBuffer: itself when it already is, else a copy. */
export function shareArray<T extends TypedArray>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const C = a.constructor as new (b: SharedArrayBuffer) => T;
  const out = new C(new SharedArrayBuffer(a.byteLength));
  out.set(a as never);
  return out;
}
