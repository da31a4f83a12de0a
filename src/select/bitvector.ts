/**
 * The bit-vector classifier (after Lakshman & Stiliadis): ordered first match over normalized
 * selectors with a prefilter (src/select/prefilter.ts). Per packet: AND the bitsets of the packet's
 * protocol/destination port, source and destination address classes, hook and interfaces, then
 * test the surviving rules in rule order. Its cost grows with the rule count (N/32 words per field
 * per packet, compile time ~N × address classes), so the stages use the tuple-space classifier
 * (src/select/match.ts); this one stays as the reference the differential test and the benchmark
 * compare against, with exactly the semantics the stages had before.
 */
import { addrClass, addrIndex, BitsetPool, setBit, type AddrIndex } from './prefilter';
import { EMPTY_BITS, F_DPORT, F_HOOK, F_PROTO, flip, IfCache, NR, R_DPORT, SelectorTable, SIGN, unflip, type InterfaceNames, type MatchInput } from './rows';
import type { NormSelector } from './selector';
import { shareArray } from './shared';

/** A BitvectorMatcher's compiled fields (src/select/shared.ts), without its selector table. */
export interface BitvectorImage {
  count: number; allBits: Uint32Array; words: number; pool: Uint32Array; allOff: number; protoOff: Int32Array;
  portOff: (Int32Array | null)[]; srcIx: AddrIndex | null; dstIx: AddrIndex | null; hookOff: Int32Array; ids: Int32Array;
}

export class BitvectorMatcher {
  readonly count: number;
  private readonly t: SelectorTable;
  private readonly allBits: Uint32Array;
  // Prefilter: bitsets in one pool; per field, the pool offset of the packet's class.
  private readonly words: number;
  private readonly pool: Uint32Array;
  private readonly allOff: number;
  private readonly protoOff = new Int32Array(256);
  private readonly portOff: (Int32Array | null)[] = new Array(256).fill(null);
  private readonly srcIx: AddrIndex | null;
  private readonly dstIx: AddrIndex | null;
  private readonly hookOff = new Int32Array(6);
  /** Per ifindex: the rules whose in (resp. out) constraint holds there. */
  private inRules = new IfCache();
  private outRules = new IfCache();

  /** Row in the selector table of each rule (identity unless the table is shared). */
  private readonly ids: Int32Array;

  /**
   * `shared`: test through an existing table (the tuple-space classifier's, whose rows ids[r] hold
   * these sels), so that both resolve interfaces through one cache.
   */
  constructor(sels: NormSelector[], shared?: { table: SelectorTable; ids: Int32Array }) {
    const t = this.t = shared?.table ?? new SelectorTable(sels);
    this.count = sels.length;
    const ids = this.ids = shared?.ids ?? Int32Array.from(sels, (_, i) => i);
    const T = t.count;
    t.onClearIfCaches(() => { this.inRules = new IfCache(); this.outRules = new IfCache(); });
    const W = this.words = Math.max(1, Math.ceil(this.count / 32));
    const pool = new BitsetPool(W);
    const all = new Uint32Array(W);
    for (let r = 0; r < this.count; r++) setBit(all, r);
    this.allOff = pool.add(all);
    const protoOk = (r: number, proto: number): boolean =>
      (!(t.present[ids[r]!]! & F_PROTO) || t.inProto(ids[r]!, proto)) &&
      (!(t.present[T + ids[r]!]! & F_PROTO) || !t.inProto(T + ids[r]!, proto));
    const positiveDport = (r: number): boolean => (t.present[ids[r]!]! & F_DPORT) !== 0;
    for (let proto = 0; proto < 256; proto++) {
      const rules: number[] = [];
      for (let r = 0; r < this.count; r++) if (protoOk(r, proto)) rules.push(r);
      const b = new Uint32Array(W);
      for (const r of rules) setBit(b, r);
      this.protoOff[proto] = pool.add(b);
      if ((proto !== 6 && proto !== 17) || !rules.some(positiveDport)) continue;
      // Sweep the port space: between two range boundaries the candidate set is constant.
      const cuts = new Set<number>([0]);
      for (const r of rules) {
        if (!positiveDport(r)) continue;
        const s = t.rStart[ids[r]! * NR + R_DPORT]!, c = t.rCount[ids[r]! * NR + R_DPORT]!;
        for (let i = s; i < s + c; i++) { cuts.add(unflip(t.rLo[i]!)); if (unflip(t.rHi[i]!) < 65535) cuts.add(unflip(t.rHi[i]!) + 1); }
      }
      const sorted = [...cuts].sort((a, b) => a - b);
      const table = new Int32Array(65536);
      for (let k = 0; k < sorted.length; k++) {
        const a = sorted[k]!, e = k + 1 < sorted.length ? sorted[k + 1]! - 1 : 65535;
        const seg = new Uint32Array(W);
        for (const r of rules) if (!positiveDport(r) || t.inRanges(ids[r]!, R_DPORT, flip(a))) setBit(seg, r);
        table.fill(pool.add(seg), a, e + 1);
      }
      this.portOff[proto] = table;
    }
    const pos = sels.map((x) => x.pos), not = sels.map((x) => x.not);
    this.srcIx = addrIndex(pos, not, 'src', pool);
    this.dstIx = addrIndex(pos, not, 'dst', pool);
    // Hooks: index hook + 1 (a TUN source reports -1).
    for (let h = -1; h < 5; h++) {
      const b = new Uint32Array(W);
      for (let r = 0; r < this.count; r++) {
        const p = ids[r]!, q = T + ids[r]!;
        const ph = t.present[p]! & F_HOOK ? h >= 0 && ((t.hookMask[p]! >>> h) & 1) === 1 : true;
        const nh = t.present[q]! & F_HOOK ? !(h >= 0 && ((t.hookMask[q]! >>> h) & 1) === 1) : true;
        if (ph && nh) setBit(b, r);
      }
      this.hookOff[h + 1] = pool.add(b);
    }
    this.pool = pool.build();
    this.allBits = this.pool.slice(this.allOff, this.allOff + W);
  }

  bind(ifaces: InterfaceNames): void { this.t.bind(ifaces); }

  /** The compiled fields as a read-only image over SharedArrayBuffers (the table is imaged by its owner). */
  image(): BitvectorImage {
    const ix = (x: AddrIndex | null): AddrIndex | null => (x ? { bounds: shareArray(x.bounds), off: shareArray(x.off), nonV4: x.nonV4 } : null);
    const pool = shareArray(this.pool);
    return {
      count: this.count, allBits: pool.subarray(this.allOff, this.allOff + this.words), words: this.words, pool, allOff: this.allOff,
      protoOff: shareArray(this.protoOff), portOff: this.portOff.map((p) => (p ? shareArray(p) : null)),
      srcIx: ix(this.srcIx), dstIx: ix(this.dstIx), hookOff: shareArray(this.hookOff), ids: shareArray(this.ids),
    };
  }

  /** A classifier over an image's arrays, testing through `table` (see SelectorTable.fromImage). */
  static fromImage(im: BitvectorImage, table: SelectorTable): BitvectorMatcher {
    return Object.assign(new BitvectorMatcher([], { table, ids: new Int32Array(0) }), im);
  }

  /** Index of the first rule that matches, or -1. */
  first(ctx: MatchInput): number {
    const t = this.t;
    const info = ctx.info;
    const proto = info.proto & 255;
    const pt = this.portOff[proto];
    const oP = pt !== null && pt !== undefined ? pt[info.dport & 0xffff]! : this.protoOff[proto]!;
    const v4 = info.ipVersion === 4;
    const oS = this.srcIx === null ? this.allOff : v4 ? addrClass(this.srcIx, info.src ^ SIGN) : this.srcIx.nonV4;
    const oD = this.dstIx === null ? this.allOff : v4 ? addrClass(this.dstIx, info.dst ^ SIGN) : this.dstIx.nonV4;
    const oH = this.hookOff[ctx.hook + 1] ?? this.hookOff[0]!;
    let inBits: Uint32Array = EMPTY_BITS, outBits: Uint32Array = EMPTY_BITS, inR = this.allBits, outR = this.allBits;
    if (t.usesIf) {
      inBits = t.ifBits(ctx.indev); outBits = t.ifBits(ctx.outdev);
      inR = this.ifRules(this.inRules, ctx.indev, inBits, t.inClass);
      outR = this.ifRules(this.outRules, ctx.outdev, outBits, t.outClass);
    }
    const a = this.pool, ids = this.ids, T = t.count;
    for (let k = 0; k < this.words; k++) {
      let w = a[oP + k]! & a[oS + k]! & a[oD + k]! & a[oH + k]! & inR[k]! & outR[k]!;
      while (w !== 0) {
        const r = (k << 5) + (31 - Math.clz32(w & -w));
        if (t.test(ids[r]!, ctx, inBits, outBits) && t.test(T + ids[r]!, ctx, inBits, outBits)) return r;
        w &= w - 1;
      }
    }
    return -1;
  }

  /** Whether rule r matches. */
  matches(r: number, ctx: MatchInput): boolean { return this.t.matches(this.ids[r]!, ctx); }

  /** Rules whose interface constraint (positive row r, `not:` row count + r) holds on ifindex. */
  private ifRules(cache: IfCache, index: number, bits: Uint32Array, cls: Int32Array): Uint32Array {
    const hit = cache.get(index);
    return hit !== undefined ? hit : this.ifRulesSlow(cache, index, bits, cls);
  }

  // Kept out of ifRules(): a closure there would make V8 allocate a context on every call.
  private ifRulesSlow(cache: IfCache, index: number, bits: Uint32Array, cls: Int32Array): Uint32Array {
    const b = new Uint32Array(this.words);
    const member = (c: number): boolean => c >= 0 && ((bits[c >>> 5]! >>> (c & 31)) & 1) === 1;
    for (let r = 0; r < this.count; r++) {
      const p = cls[this.ids[r]!]!, q = cls[this.t.count + this.ids[r]!]!;
      if ((p < 0 || member(p)) && (q < 0 || !member(q))) setBit(b, r);
    }
    cache.set(index, b);
    return b;
  }
}
