/**
 * A time budget for one slice of housekeeping on the packet thread (idle sweep, journal compaction,
 * SA listing): the slice calls step() after each record and stops when it returns true.
 *
 * Capped by time, not by a count of records: a record costs ~0.1 µs once the JIT has compiled the
 * loop and tens of µs before (the first slices of a mass expiry run unoptimised), and a fixed
 * "check the clock every N records" overshoots by N times the cold cost. Instead the clock is read
 * after the first record, and each next check is placed after the number of records that, at the
 * cost measured so far in this slice, fill at most half of the time left (1..MAX_STRIDE records).
 * So a slice ends within about its budget whether the code is cold or hot, and a hot slice reads
 * the clock only every MAX_STRIDE records. Nothing is allocated (one instance per user, reused).
 */
const MAX_STRIDE = 128;

export class SliceBudget {
  private t0 = 0;
  private deadline = 0;
  private records = 0;
  private countdown = 1;
  /** Longest slice so far (ms; from start() to end()), for benchmarks and stats. */
  longestMs = 0;

  start(budgetMs: number): void {
    this.t0 = performance.now();
    this.deadline = this.t0 + budgetMs;
    this.records = 0;
    this.countdown = 1;
  }

  /** One record done; true when the slice's time is up. */
  step(): boolean {
    this.records++;
    if (--this.countdown > 0) return false;
    const now = performance.now();
    if (now >= this.deadline) return true;
    const perRecord = (now - this.t0) / this.records;
    const fit = perRecord > 0 ? Math.floor((this.deadline - now) / perRecord / 2) : MAX_STRIDE;
    this.countdown = fit < 1 ? 1 : fit > MAX_STRIDE ? MAX_STRIDE : fit;
    return false;
  }

  /** True when the budget is spent (a check between records, outside step()'s stride). */
  spent(): boolean { return performance.now() >= this.deadline; }

  /** Ends the slice: returns its length (ms) and keeps the longest. */
  end(): number {
    const ms = performance.now() - this.t0;
    if (ms > this.longestMs) this.longestMs = ms;
    return ms;
  }
}
