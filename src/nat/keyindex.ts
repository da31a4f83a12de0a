/**
 * Open-addressing hash index from a 4 × uint32 key to a non-negative int32 value (a record id).
 *
 * Linear probing at load ≤ 0.5, backward-shift deletion (no tombstones, so lookups of unknown keys
 * stay short even after millions of deletes). Keys and values live in two typed arrays: a lookup
 * allocates nothing, and 1M entries take 2M slots × 20 bytes = 40 MiB.
 *
 * Shared (SharedArrayBuffer) indexes have one writer thread; readers in other threads use
 * getShared(), which may miss a key that is being moved or return a stale id: callers check the
 * record the id names (SaTable.seq, docs/nat.md "Memory model"). A shared index's arrays are
 * allocated once at their largest size (other threads hold views of them), but only a prefix is in
 * use, doubled in place as entries are added: the slots of a small table stay few and close (cache
 * lines, pages) instead of spread over the whole allocation, and pages past the prefix are never
 * touched. A doubling rehashes in place between two increments of a generation count (odd while
 * it runs); a reader that sees the count odd, or changed by the end of its read, misses.
 */
export interface KeyIndexMemory {
  keys: Uint32Array; vals: Int32Array;
  /** [0]: generation, odd while the writer rehashes; [1]: the mask (slots in use − 1). */
  ctl: Int32Array;
}

/** Slots a shared index starts with (then doubles in place). */
const SHARED_START = 1024;

export class KeyIndex {
  private keys: Uint32Array;
  private vals: Int32Array;
  private mask: number;
  private readonly shared: boolean;
  /** Shared: generation and mask (KeyIndexMemory.ctl); a private index has an unused one. */
  private readonly ctl: Int32Array;
  /** Shared: slots allocated (the most `mask` may grow to, + 1). */
  private readonly maxSlots: number;
  size = 0;

  constructor(initialCapacity = 1024, mem: { shared: boolean } | KeyIndexMemory = { shared: false }) {
    if ('keys' in mem) {
      // A reader's view of another thread's index: the mask is read from ctl at each lookup.
      this.keys = mem.keys;
      this.vals = mem.vals;
      this.ctl = mem.ctl;
      this.mask = mem.vals.length - 1;
      this.maxSlots = mem.vals.length;
      this.shared = true;
      return;
    }
    let cap = 16;
    while (cap < initialCapacity) cap *= 2;
    this.shared = mem.shared;
    this.maxSlots = cap;
    if (mem.shared) {
      this.keys = new Uint32Array(new SharedArrayBuffer(cap * 16));
      this.vals = new Int32Array(new SharedArrayBuffer(cap * 4));
      this.ctl = new Int32Array(new SharedArrayBuffer(8));
      this.mask = Math.min(cap, SHARED_START) - 1;
      this.vals.fill(-1, 0, this.mask + 1);
      Atomics.store(this.ctl, 1, this.mask);
    } else {
      this.keys = new Uint32Array(cap * 4);
      this.vals = new Int32Array(cap).fill(-1);
      this.ctl = new Int32Array(2);
      this.mask = cap - 1;
    }
  }

  /** The arrays, for a reader in another thread (a shared index only). */
  memory(): KeyIndexMemory {
    if (!this.shared) throw new Error('KeyIndex.memory: the index is not shared');
    return { keys: this.keys, vals: this.vals, ctl: this.ctl };
  }

  /**
   * get() for a thread that is not the writer: at most `capacity` probes (a run being shifted
   * under the reader cannot make it loop), and -1 on any doubt. The id may name a record that no
   * longer has this key: the caller checks.
   */
  getShared(a: number, b: number, c: number, d: number): number {
    const keys = this.keys;
    const vals = this.vals;
    const gen = Atomics.load(this.ctl, 0);
    if ((gen & 1) !== 0) return -1; // the writer is rehashing
    this.lastGen = gen;
    const mask = Atomics.load(this.ctl, 1);
    let i = KeyIndex.hash(a, b, c, d) & mask;
    for (let n = 0; n <= mask; n++) {
      const v = vals[i];
      if (v < 0) return -1;
      const k = i << 2;
      if (keys[k] === a && keys[k + 1] === b && keys[k + 2] === c && keys[k + 3] === d) { this.lastSlot = i; return v; }
      i = (i + 1) & mask;
    }
    return -1;
  }

  /**
   * get() for a thread that is not the writer and checks afterwards that nothing was written
   * meanwhile (SaTable.epoch unchanged): no generation check, the mask read as it is, at most
   * `capacity` probes. Under a concurrent write its answer is worthless (any value, or -1), never a
   * loop or an index out of the arrays.
   */
  getQuiet(a: number, b: number, c: number, d: number): number {
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.ctl[1];
    let i = KeyIndex.hash(a, b, c, d) & mask;
    for (let n = 0; n <= mask; n++) {
      const v = vals[i];
      if (v < 0) return -1;
      const k = i << 2;
      if (keys[k] === a && keys[k + 1] === b && keys[k + 2] === c && keys[k + 3] === d) return v;
      i = (i + 1) & mask;
    }
    return -1;
  }

  /** The slot where getShared() last found its key. */
  lastSlot = -1;
  /** The generation getShared() last read. */
  private lastGen = 0;

  /** No rehash began since the last getShared(): what it returned and read since is of one layout. */
  unchangedSinceLookup(): boolean {
    return Atomics.load(this.ctl, 0) === this.lastGen;
  }

  /** True while slot i still maps exactly this key to value v (a reader's re-check; see SharedSaView). */
  slotHolds(i: number, a: number, b: number, c: number, d: number, v: number): boolean {
    const k = i << 2;
    const keys = this.keys;
    return this.vals[i] === v && keys[k] === a && keys[k + 1] === b && keys[k + 2] === c && keys[k + 3] === d;
  }

  get capacity(): number { return this.mask + 1; }

  get byteLength(): number { return this.keys.byteLength + this.vals.byteLength; }

  private static hash(a: number, b: number, c: number, d: number): number {
    // murmur3-style mixing of the four words; the SPI words are random already, addresses are not.
    let h = Math.imul(a ^ 0x9e3779b9, 0xcc9e2d51);
    h = Math.imul((h << 15) | (h >>> 17), 0x1b873593) ^ b;
    h = Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64;
    h ^= c;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) ^ d;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  /** The value stored for the key, or -1. */
  get(a: number, b: number, c: number, d: number): number {
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    let i = KeyIndex.hash(a, b, c, d) & mask;
    for (;;) {
      const v = vals[i];
      if (v < 0) return -1;
      const k = i << 2;
      if (keys[k] === a && keys[k + 1] === b && keys[k + 2] === c && keys[k + 3] === d) return v;
      i = (i + 1) & mask;
    }
  }

  /** Inserts or replaces. */
  set(a: number, b: number, c: number, d: number, value: number): void {
    if ((this.size + 1) * 2 > this.mask + 1) {
      if (!this.shared) this.grow();
      // Allocated at twice the table's cap: only a caller past its own cap finds it full.
      else if (this.mask + 1 < this.maxSlots) this.growShared();
      else throw new Error('KeyIndex: a shared index is full');
    }
    this.put(a >>> 0, b >>> 0, c >>> 0, d >>> 0, value);
  }

  private put(a: number, b: number, c: number, d: number, value: number): void {
    const keys = this.keys;
    const mask = this.mask;
    let i = KeyIndex.hash(a, b, c, d) & mask;
    for (;;) {
      const k = i << 2;
      if (this.vals[i] < 0) {
        keys[k] = a; keys[k + 1] = b; keys[k + 2] = c; keys[k + 3] = d;
        this.vals[i] = value;
        this.size++;
        return;
      }
      if (keys[k] === a && keys[k + 1] === b && keys[k + 2] === c && keys[k + 3] === d) {
        this.vals[i] = value;
        return;
      }
      i = (i + 1) & mask;
    }
  }

  delete(a: number, b: number, c: number, d: number): boolean {
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    let i = KeyIndex.hash(a, b, c, d) & mask;
    for (;;) {
      if (vals[i] < 0) return false;
      const k = i << 2;
      if (keys[k] === a && keys[k + 1] === b && keys[k + 2] === c && keys[k + 3] === d) break;
      i = (i + 1) & mask;
    }
    // Backward-shift: pull later entries of the same probe run into the hole.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (vals[j] < 0) break;
      const kj = j << 2;
      const home = KeyIndex.hash(keys[kj], keys[kj + 1], keys[kj + 2], keys[kj + 3]) & mask;
      // Move j into i when its home is not cyclically within (i, j].
      const inRange = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (inRange) continue;
      const ki = i << 2;
      keys[ki] = keys[kj]; keys[ki + 1] = keys[kj + 1]; keys[ki + 2] = keys[kj + 2]; keys[ki + 3] = keys[kj + 3];
      vals[i] = vals[j];
      i = j;
    }
    vals[i] = -1;
    this.size--;
    return true;
  }

  clear(): void {
    if (this.shared) Atomics.add(this.ctl, 0, 1); // readers miss until it is done
    this.vals.fill(-1, 0, this.mask + 1);
    this.size = 0;
    if (this.shared) Atomics.add(this.ctl, 0, 1);
  }

  /**
   * Doubles the slots in use, in place (readers hold views of these arrays): the generation is odd
   * from before the first slot changes until the new mask is published, so no reader acts on a slot
   * read meanwhile (getShared() misses, or unchangedSinceLookup() is false).
   */
  private growShared(): void {
    const oldCap = this.mask + 1;
    const oldKeys = this.keys.slice(0, oldCap * 4);
    const oldVals = this.vals.slice(0, oldCap);
    Atomics.add(this.ctl, 0, 1);
    this.mask = oldCap * 2 - 1;
    this.vals.fill(-1, 0, this.mask + 1);
    this.size = 0;
    for (let i = 0; i < oldCap; i++) {
      if (oldVals[i]! < 0) continue;
      const k = i << 2;
      this.put(oldKeys[k]!, oldKeys[k + 1]!, oldKeys[k + 2]!, oldKeys[k + 3]!, oldVals[i]!);
    }
    Atomics.store(this.ctl, 1, this.mask);
    Atomics.add(this.ctl, 0, 1);
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    const cap = (this.mask + 1) * 2;
    this.keys = new Uint32Array(cap * 4);
    this.vals = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
    this.size = 0;
    for (let i = 0; i < oldVals.length; i++) {
      if (oldVals[i] < 0) continue;
      const k = i << 2;
      this.put(oldKeys[k], oldKeys[k + 1], oldKeys[k + 2], oldKeys[k + 3], oldVals[i]);
    }
  }
}
