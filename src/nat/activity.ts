/**
 * A worker's packet and byte counts of the SAs it translates, kept in its own memory and added to
 * the shared table's `pkts`/`bytes` every FLUSH_MS (NatWorkerStage.tick) and when it stops.
 *
 * Why: an SA's two directions usually land in different workers, and neighbouring records share
 * cache lines, so counting straight into the shared arrays made two workers write the same lines
 * for nearly every ESP packet; each such write waits for the line to come back from the other core
 * (bench/RESULTS.md "Workers", the evening of 2 Dec: ~5–9 % of a worker's CPU per packet).
 *
 * A direct-mapped cache of SLOTS entries (record id & mask; ids are handed out from 0 up, so up to
 * SLOTS live SAs never collide): a record meeting an occupied slot first spills the occupant into
 * the shared arrays. Each entry remembers its record's `seq` (its lifetime) when it took the slot;
 * counts of a record removed (or removed and reused) before they are spilled are dropped, never
 * added to a later record. Counts are statistics (`sluice sa`), never decisions: they reach the
 * shared table up to FLUSH_MS late.
 */
export const FLUSH_MS = 250;
const SLOTS = 4096;

export class ActivityCache {
  private readonly mask = SLOTS - 1;
  private readonly ids = new Int32Array(SLOTS).fill(-1);
  /** The record's seq when the slot was taken. */
  private readonly seqs = new Int32Array(SLOTS);
  private readonly pk = new Float64Array(SLOTS);
  private readonly by = new Float64Array(SLOTS);
  /** Counts dropped because their record ended before they were spilled. */
  dropped = 0;

  constructor(private readonly pkts: Float64Array, private readonly bytes: Float64Array, private readonly seq: Int32Array) {}

  add(id: number, length: number): void {
    const s = id & this.mask;
    if (this.ids[s] !== id) {
      if (this.ids[s] >= 0) this.spill(s);
      this.ids[s] = id;
      this.seqs[s] = Atomics.load(this.seq, id);
    }
    this.pk[s]++;
    this.by[s] += length;
  }

  /** Adds every entry's counts to the shared arrays and empties the cache. */
  flush(): void {
    const ids = this.ids;
    for (let s = 0; s < SLOTS; s++) if (ids[s] >= 0) { this.spill(s); ids[s] = -1; }
  }

  private spill(s: number): void {
    const id = this.ids[s];
    // Same lifetime as when counting began (an odd seq then: the record was being rewritten; dropped).
    if ((this.seqs[s] & 1) === 0 && Atomics.load(this.seq, id) === this.seqs[s]) {
      this.pkts[id] += this.pk[s];
      this.bytes[id] += this.by[s];
    } else {
      this.dropped += this.pk[s];
    }
    this.pk[s] = 0;
    this.by[s] = 0;
  }
}
