/**
 * Token buckets per client key (a 32-bit hash) plus one for everybody, in typed arrays: a Map from
 * key to slot, tokens and last-refill time per slot. Full table: new clients are refused until
 * tick() frees the slots of idle ones (a flood of invented clients cannot grow memory).
 */
export class RateLimiter {
  private readonly slots = new Map<number, number>();
  private readonly tokens: Float64Array;
  private readonly last: Float64Array;
  private readonly free: number[] = [];
  private totalTokens: number;
  private totalLast = 0;

  constructor(readonly perSecond: number, readonly burst: number, readonly totalPerSecond: number, readonly max: number) {
    this.tokens = new Float64Array(max);
    this.last = new Float64Array(max);
    for (let i = max - 1; i >= 0; i--) this.free.push(i);
    this.totalTokens = Math.max(burst, totalPerSecond);
  }

  /** True when `key` may be answered now (and takes a token). */
  allow(key: number, now: number): boolean {
    const tc = Math.max(this.burst, this.totalPerSecond);
    this.totalTokens = Math.min(tc, this.totalTokens + ((now - this.totalLast) / 1000) * this.totalPerSecond);
    this.totalLast = now;
    if (this.totalTokens < 1) return false;
    let s = this.slots.get(key);
    if (s === undefined) {
      s = this.free.pop();
      if (s === undefined) return false;
      this.slots.set(key, s);
      this.tokens[s] = this.burst;
      this.last[s] = now;
    }
    const t = Math.min(this.burst, this.tokens[s]! + ((now - this.last[s]!) / 1000) * this.perSecond);
    this.last[s] = now;
    if (t < 1) { this.tokens[s] = t; return false; }
    this.tokens[s] = t - 1;
    this.totalTokens -= 1;
    return true;
  }

  /** Frees slots whose bucket has refilled completely (the client has been quiet long enough). */
  sweep(now: number): void {
    const full = (this.burst / this.perSecond) * 1000;
    for (const [k, s] of this.slots) {
      if (now - this.last[s]! >= full) { this.slots.delete(k); this.free.push(s); }
    }
  }

  get size(): number { return this.slots.size; }
}
