/**
 * The tuple index of the classifier (match.ts) laid out for its per-packet search: every tuple (the
 * rows filed under one set of key fields and masks) becomes one open-addressing hash table, and all
 * tables are flattened into shared typed arrays in search order (by first row). Per (protocol, kind)
 * of a packet, the pruned list of tuples that can hold its key. Compile time only: Matcher.first()
 * reads the arrays in place (and hashes a key exactly as hashKey() does here).
 */

/** A tuple as fileRows() (match.ts) builds it: its fields and masks, and rows by masked key. */
export interface TupleBuild {
  fields: number[]; masks: number[]; entries: Map<string, { vals: number[]; rows: number[] }>; minRow: number;
  /** The protocols, kinds its keys hold (null: the tuple does not key on that field). */
  protos: Set<number> | null; kinds: Set<number> | null;
}

/**
 * The flattened tables: per tuple its field count, mask of its slot count, hash seed, first row,
 * and offsets into the field, slot and key arrays; per slot the offset of its rows in `pool` (-1:
 * empty) and their count; per proto * 8 + kind an offset and length into `pruned`.
 */
export interface TupleLayout {
  tK: Int32Array; tCap: Int32Array; tSeed: Int32Array; tMin: Int32Array; tFOff: Int32Array; tSOff: Int32Array; tKOff: Int32Array;
  tF: Int32Array; tM: Int32Array; sStart: Int32Array; sLen: Int32Array; sKeys: Int32Array;
  pOff: Int32Array; pLen: Int32Array; pruned: Int32Array; pool: Int32Array;
}

/** One hash table: the rows filed under (these fields, these masks), by masked key. */
class Tuple {
  readonly k: number;
  readonly capMask: number;
  readonly keys: Int32Array;
  /** Per slot: offset of its rows in the shared row pool, -1 for an empty slot. */
  readonly start: Int32Array;
  readonly len: Int32Array;
  constructor(readonly fields: Int32Array, readonly masks: Int32Array, entries: number, readonly seed: number, public minRow: number) {
    this.k = fields.length;
    let cap = 2;
    while (cap < entries * 2) cap *= 2;
    this.capMask = cap - 1;
    this.keys = new Int32Array(cap * Math.max(1, this.k));
    this.start = new Int32Array(cap).fill(-1);
    this.len = new Int32Array(cap);
  }
}

function hashKey(seed: number, vals: ArrayLike<number>, k: number): number {
  let h = seed;
  for (let i = 0; i < k; i++) { h = Math.imul(h ^ vals[i]!, 0x9e3779b1); h ^= h >>> 15; }
  return h;
}

/**
 * Lays out the tuples (builds, in their filing order) and, when there are wildcard rows (`wild`,
 * ascending), the wildcard tuple: no fields, searched by Matcher's bit-vector classifier.
 */
export function layOutTuples(builds: Iterable<TupleBuild>, wild: readonly number[]): TupleLayout {
  // One pool of row lists, one open-addressing table per tuple.
  let total = wild.length > 0 ? 1 : 0;
  const bs = [...builds];
  for (const b of bs) for (const e of b.entries.values()) total += e.rows.length;
  const pool = new Int32Array(total);
  let at = 0, seed = 0x3c6ef372;
  const tuples: Tuple[] = [];
  const gates: { protos: Set<number> | null; kinds: Set<number> | null }[] = [];
  for (const b of bs) {
    gates.push({ protos: b.protos, kinds: b.kinds });
    const tu = new Tuple(Int32Array.from(b.fields), Int32Array.from(b.masks), b.entries.size, seed = Math.imul(seed + 0x61c88647, 0x85ebca6b) | 0, b.minRow);
    for (const e of b.entries.values()) {
      let slot = hashKey(tu.seed, e.vals, tu.k) & tu.capMask;
      while (tu.start[slot] !== -1) slot = (slot + 1) & tu.capMask;
      for (let i = 0; i < tu.k; i++) tu.keys[slot * tu.k + i] = e.vals[i]!;
      tu.start[slot] = at; tu.len[slot] = e.rows.length;
      pool.set(e.rows, at); at += e.rows.length;
    }
    tuples.push(tu);
  }
  if (wild.length > 0) {
    tuples.push(new Tuple(new Int32Array(0), new Int32Array(0), 1, 0, wild[0]!));
    gates.push({ protos: null, kinds: null });
  }
  const order = tuples.map((_, i) => i).sort((x, y) => tuples[x]!.minRow - tuples[y]!.minRow);
  const gate = order.map((i) => gates[i]!);
  tuples.splice(0, tuples.length, ...order.map((i) => tuples[i]!));
  // Pruned tuple lists per (proto, kind), deduplicated (most combinations share one).
  const pOff = new Int32Array(256 * 8), pLen = new Int32Array(256 * 8);
  const lists = new Map<string, number>();
  const flat: number[] = [];
  for (let p = 0; p < 256; p++) {
    for (let kd = 0; kd < 8; kd++) {
      const ids: number[] = [];
      gate.forEach((g, i) => { if ((!g.protos || g.protos.has(p)) && (!g.kinds || g.kinds.has(kd))) ids.push(i); });
      const key = ids.join(',');
      let off = lists.get(key);
      if (off === undefined) { off = flat.length; flat.push(...ids); lists.set(key, off); }
      pOff[p * 8 + kd] = off; pLen[p * 8 + kd] = ids.length;
    }
  }
  const T = tuples.length;
  const tFOff = new Int32Array(T), tSOff = new Int32Array(T), tKOff = new Int32Array(T);
  let nf = 0, ns = 0, nk = 0;
  tuples.forEach((x, i) => { tFOff[i] = nf; tSOff[i] = ns; tKOff[i] = nk; nf += x.k; ns += x.capMask + 1; nk += x.keys.length; });
  const tF = new Int32Array(nf), tM = new Int32Array(nf);
  const sStart = new Int32Array(ns), sLen = new Int32Array(ns), sKeys = new Int32Array(nk);
  tuples.forEach((x, i) => {
    tF.set(x.fields, tFOff[i]!); tM.set(x.masks, tFOff[i]!);
    sStart.set(x.start, tSOff[i]!); sLen.set(x.len, tSOff[i]!); sKeys.set(x.keys, tKOff[i]!);
  });
  return {
    tK: Int32Array.from(tuples, (x) => x.k), tCap: Int32Array.from(tuples, (x) => x.capMask),
    tSeed: Int32Array.from(tuples, (x) => x.seed), tMin: Int32Array.from(tuples, (x) => x.minRow),
    tFOff, tSOff, tKOff, tF, tM, sStart, sLen, sKeys, pOff, pLen, pruned: Int32Array.from(flat), pool,
  };
}
