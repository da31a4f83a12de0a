/**
 * Bit-vector prefilter for the matcher (after Lakshman & Stiliadis' bit-vector packet
 * classification): for each of a few fields, the value space is cut into classes within which the
 * set of rules that can still match is constant, and each class stores that set as a bitset (one bit
 * per rule, in rule order). Per packet the bitsets of the packet's classes are ANDed word by word and
 * only the surviving rules are tested, lowest bit (= earliest rule) first, so first-match order holds.
 * A rule's bit is cleared only where the field alone proves it cannot match.
 */
import type { AddrRanges } from './addr';
import type { NormFields } from './selector';

/** Deduplicating store of equal-length bitsets in one Uint32Array; offsets are multiples of words. */
export class BitsetPool {
  private readonly parts: Uint32Array[] = [];
  private readonly ids = new Map<string, number>();
  private size = 0;
  constructor(readonly words: number) {}

  add(b: Uint32Array): number {
    const key = b.join(',');
    let off = this.ids.get(key);
    if (off === undefined) { off = this.size; this.size += this.words; this.parts.push(b); this.ids.set(key, off); }
    return off;
  }

  build(): Uint32Array {
    const out = new Uint32Array(this.size);
    this.parts.forEach((p, i) => out.set(p, i * this.words));
    return out;
  }
}

export function setBit(b: Uint32Array, r: number): void { b[r >>> 5] = b[r >>> 5]! | (1 << (r & 31)); }

/** Rules whose [pos, not] address constraint can hold, per class of the 32-bit address space. */
export interface AddrIndex {
  /** Sorted class starts, sign-flipped (x ^ 0x80000000); an address belongs to the last start ≤ it. */
  bounds: Int32Array;
  /** Pool offset per class. */
  off: Int32Array;
  /** Pool offset for packets without an IPv4 address (IPv6): rules without a positive constraint. */
  nonV4: number;
}

export function addrIndex(pos: NormFields[], not: NormFields[], key: 'src' | 'dst', pool: BitsetPool): AddrIndex | null {
  const n = pos.length;
  const cuts = new Set<number>([0]);
  let used = false;
  for (const f of [...pos, ...not]) {
    const s: AddrRanges | undefined = f[key];
    if (!s) continue;
    used = true;
    for (let i = 0; i < s.lo.length; i++) { cuts.add(s.lo[i]!); if (s.hi[i]! < 0xffffffff) cuts.add(s.hi[i]! + 1); }
  }
  if (!used) return null;
  const starts = [...cuts].sort((a, b) => a - b);
  const bounds = Int32Array.from(starts, (x) => x ^ 0x80000000);
  const off = new Int32Array(bounds.length);
  for (let c = 0; c < bounds.length; c++) {
    const a = starts[c]!;
    const b = new Uint32Array(pool.words);
    for (let r = 0; r < n; r++) {
      const p = pos[r]![key], q = not[r]![key];
      if ((!p || p.has(a)) && (!q || !q.has(a))) setBit(b, r);
    }
    off[c] = pool.add(b);
  }
  const b = new Uint32Array(pool.words);
  for (let r = 0; r < n; r++) if (!pos[r]![key]) setBit(b, r);
  return { bounds, off, nonV4: pool.add(b) };
}

/** Pool offset of the class holding address a, given sign-flipped (a ^ 0x80000000). */
export function addrClass(ix: AddrIndex, a: number): number {
  const bounds = ix.bounds;
  let l = 0, h = bounds.length - 1;
  while (l < h) {
    const m = (l + h + 1) >>> 1;
    if (bounds[m]! <= a) l = m; else h = m - 1;
  }
  return ix.off[l]!;
}
