/**
 * Batch-gap recorder for the stall benchmarks: a fixed histogram (10 µs buckets up to 1 s), so
 * recording a million gaps allocates nothing (a growing array's copies would show up as gaps).
 */
export class Gaps {
  private readonly hist = new Float64Array(100_001);
  count = 0;
  max = 0;
  /** Times (ms since start) of gaps over 5 ms, first 10. */
  readonly over5: number[] = [];

  add(ms: number, at: number): void {
    this.count++;
    if (ms > this.max) this.max = ms;
    if (ms > 5 && this.over5.length < 10) this.over5.push(Math.round(at));
    this.hist[Math.min(100_000, Math.floor(ms * 100))]!++;
  }

  quantile(q: number): number {
    const want = Math.ceil(this.count * q);
    let n = 0;
    for (let i = 0; i < this.hist.length; i++) { n += this.hist[i]!; if (n >= want) return (i + 1) / 100; }
    return this.max;
  }
}
