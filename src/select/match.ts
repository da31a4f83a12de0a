/**
 * Ordered first-match over normalized selectors, compiled once (at load and at reload).
 *
 * Per packet: AND the prefilter bitsets of the packet's protocol/destination port, source and
 * destination address classes, hook and interfaces (src/select/prefilter.ts), then test the surviving
 * rules in rule order against structure-of-arrays tables. Only numbers are compared; no allocation, no strings, no throws.
 * Interface globs are resolved to per-ifindex bit sets, cached per index and dropped when the
 * interface table refreshes (a new ipsec0 / ppp0 is picked up without a reload).
 */
import { Kind, type Classified } from '../packet/classify';
import { PROTO_TCP, PROTO_UDP } from '../packet/ipv4';
import type { AddrRanges } from './addr';
import { globToRegExp } from './glob';
import type { NormSelector, Range } from './selector';
import { addrClass, addrIndex, BitsetPool, IfCache, setBit, type AddrIndex } from './prefilter';

/** What a selector looks at: the packet's classification and its queue metadata (the engine's MatchInput). */
export interface MatchInput {
  readonly info: Classified;
  mark: number;
  indev: number;
  outdev: number;
  /** Netfilter hook number, -1 for a TUN source. */
  hook: number;
  queue: number;
}

/** The part of the interface table a matcher needs (the engine's Interfaces). */
export interface InterfaceNames {
  nameOf(index: number): string | undefined;
  onRefresh(listener: () => void): void;
}

// Field bits (present / negated masks).
export const F_HOOK = 1, F_IN = 2, F_OUT = 4, F_SRC = 8, F_DST = 16, F_PROTO = 32, F_SPORT = 64,
  F_DPORT = 128, F_ICMP = 256, F_DHCP = 512, F_IKE = 1024, F_SPI = 2048, F_KIND = 4096, F_MARK = 8192,
  F_LEN = 16384, F_QUEUE = 32768, F_IPVER = 65536;

// Range-valued fields, index into the per-rule range table.
const R_SPORT = 0, R_DPORT = 1, R_SPI = 2, R_LEN = 3, R_QUEUE = 4, NR = 5;
// 256-bit bitmaps (8 words) per rule.
const B_PROTO = 0, B_ICMP = 1, B_DHCP = 2, B_IKE = 3, NB = 4;

const EMPTY: Uint32Array = new Uint32Array(1);
const SIGN = 0x80000000 | 0;
const flip = (x: number): number => (x ^ SIGN);
const unflip = (x: number): number => (x ^ SIGN) >>> 0;
const hasPorts = (proto: number, laterFragment: boolean): boolean => (proto === PROTO_TCP || proto === PROTO_UDP) && !laterFragment;

export class Matcher {
  readonly count: number;
  private readonly present: Uint32Array;
  private readonly neg: Uint32Array;
  private readonly hookMask: Uint32Array;
  private readonly inClass: Int32Array;
  private readonly outClass: Int32Array;
  private readonly srcSet: (AddrRanges | null)[];
  private readonly dstSet: (AddrRanges | null)[];
  private readonly bm: Uint32Array;
  private readonly kindMask: Uint32Array;
  private readonly rStart: Int32Array;
  private readonly rCount: Int32Array;
  // Range bounds stored sign-flipped (x ^ 0x80000000, as int32): unsigned order becomes signed order,
  // and values passed around stay small integers. A uint32 ≥ 2^31 (addresses, SPIs) passed to a
  // function that is not inlined would be boxed in a fresh HeapNumber: one allocation per packet.
  private readonly rLo: Int32Array;
  private readonly rHi: Int32Array;
  private readonly markValue: Int32Array;
  private readonly markMask: Int32Array;
  private readonly ipVer: Uint8Array;
  // Interface classes (distinct glob lists) and their per-ifindex membership bits.
  private readonly classes: RegExp[][] = [];
  private readonly ifWords: number;
  private ifCache = new IfCache();
  private readonly allBits: Uint32Array;
  private ifaces: InterfaceNames | null = null;
  private readonly usesIf: boolean;
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

  constructor(sels: NormSelector[]) {
    // Row r holds rule r's positive fields, row count + r its `not:` fields (all flagged negated).
    const rows = [...sels.map((s) => ({ f: s.pos, neg: false })), ...sels.map((s) => ({ f: s.not, neg: true }))];
    this.count = sels.length;
    const n = rows.length;
    this.present = new Uint32Array(n);
    this.neg = new Uint32Array(n);
    this.hookMask = new Uint32Array(n);
    this.inClass = new Int32Array(n).fill(-1);
    this.outClass = new Int32Array(n).fill(-1);
    this.srcSet = new Array(n).fill(null);
    this.dstSet = new Array(n).fill(null);
    this.bm = new Uint32Array(n * NB * 8);
    this.kindMask = new Uint32Array(n);
    this.rStart = new Int32Array(n * NR);
    this.rCount = new Int32Array(n * NR);
    this.markValue = new Int32Array(n);
    this.markMask = new Int32Array(n);
    this.ipVer = new Uint8Array(n);
    const lo: number[] = [], hi: number[] = [];
    const classKeys = new Map<string, number>();
    const cls = (globs: string[]): number => {
      const key = JSON.stringify(globs);
      let id = classKeys.get(key);
      if (id === undefined) { id = this.classes.length; classKeys.set(key, id); this.classes.push(globs.map(globToRegExp)); }
      return id;
    };
    rows.forEach(({ f: s, neg }, r) => {
      let p = 0;
      const mark = (bit: number, f: unknown): boolean => {
        if (f === undefined) return false;
        p |= bit;
        return true;
      };
      const ranges = (slot: number, rs: Range[]): void => {
        this.rStart[r * NR + slot] = lo.length; this.rCount[r * NR + slot] = rs.length;
        for (const [a, b] of rs) { lo.push(a); hi.push(b); }
      };
      const bits = (slot: number, vs: number[]): void => {
        for (const v of vs) {
          const w = (r * NB + slot) * 8 + (v >>> 5);
          this.bm[w] = this.bm[w]! | (1 << (v & 31));
        }
      };
      if (mark(F_HOOK, s.hook)) this.hookMask[r] = s.hook!;
      if (mark(F_IN, s.in)) this.inClass[r] = cls(s.in!);
      if (mark(F_OUT, s.out)) this.outClass[r] = cls(s.out!);
      if (mark(F_SRC, s.src)) this.srcSet[r] = s.src!;
      if (mark(F_DST, s.dst)) this.dstSet[r] = s.dst!;
      if (mark(F_PROTO, s.proto)) bits(B_PROTO, s.proto!);
      if (mark(F_SPORT, s.sport)) ranges(R_SPORT, s.sport!);
      if (mark(F_DPORT, s.dport)) ranges(R_DPORT, s.dport!);
      if (mark(F_ICMP, s.icmp_type)) bits(B_ICMP, s.icmp_type!);
      if (mark(F_DHCP, s.dhcp_type)) bits(B_DHCP, s.dhcp_type!);
      if (mark(F_IKE, s.ike_exchange)) bits(B_IKE, s.ike_exchange!);
      if (mark(F_SPI, s.esp_spi)) ranges(R_SPI, s.esp_spi!);
      if (mark(F_KIND, s.kind)) this.kindMask[r] = s.kind!.reduce((m, k) => m | (1 << k), 0);
      if (mark(F_MARK, s.mark)) { this.markValue[r] = s.mark!.value; this.markMask[r] = s.mark!.mask; }
      if (mark(F_LEN, s.length)) ranges(R_LEN, s.length!);
      if (mark(F_QUEUE, s.queue)) ranges(R_QUEUE, s.queue!);
      if (mark(F_IPVER, s.ip_version)) this.ipVer[r] = s.ip_version!;
      this.present[r] = p; this.neg[r] = neg ? p : 0;
    });
    this.rLo = Int32Array.from(lo, flip);
    this.rHi = Int32Array.from(hi, flip);
    this.ifWords = Math.max(1, Math.ceil(this.classes.length / 32));
    this.usesIf = this.classes.length > 0;

    // Prefilter bitsets (src/select/prefilter.ts): protocol + destination port, addresses, hook.
    const W = this.words = Math.max(1, Math.ceil(this.count / 32));
    const pool = new BitsetPool(W);
    const all = new Uint32Array(W);
    for (let r = 0; r < this.count; r++) setBit(all, r);
    this.allOff = pool.add(all);
    const inProto = (row: number, proto: number): boolean =>
      (this.bm[(row * NB + B_PROTO) * 8 + (proto >>> 5)]! >>> (proto & 31) & 1) === 1;
    const protoOk = (r: number, proto: number): boolean =>
      (!(this.present[r]! & F_PROTO) || inProto(r, proto)) &&
      (!(this.present[this.count + r]! & F_PROTO) || !inProto(this.count + r, proto));
    const positiveDport = (r: number): boolean => (this.present[r]! & F_DPORT) !== 0;
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
        const s = this.rStart[r * NR + R_DPORT]!, c = this.rCount[r * NR + R_DPORT]!;
        for (let i = s; i < s + c; i++) { cuts.add(unflip(this.rLo[i]!)); if (unflip(this.rHi[i]!) < 65535) cuts.add(unflip(this.rHi[i]!) + 1); }
      }
      const sorted = [...cuts].sort((a, b) => a - b);
      const table = new Int32Array(65536);
      for (let k = 0; k < sorted.length; k++) {
        const a = sorted[k]!, e = k + 1 < sorted.length ? sorted[k + 1]! - 1 : 65535;
        const seg = new Uint32Array(W);
        for (const r of rules) if (!positiveDport(r) || this.inRanges(r, R_DPORT, flip(a))) setBit(seg, r);
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
        const ph = this.present[r]! & F_HOOK ? h >= 0 && ((this.hookMask[r]! >>> h) & 1) === 1 : true;
        const nh = this.present[this.count + r]! & F_HOOK ? !(h >= 0 && ((this.hookMask[this.count + r]! >>> h) & 1) === 1) : true;
        if (ph && nh) setBit(b, r);
      }
      this.hookOff[h + 1] = pool.add(b);
    }
    this.pool = pool.build();
    this.allBits = this.pool.slice(this.allOff, this.allOff + W);
  }

  /** Resolves interface globs against this table (and again whenever it refreshes). */
  bind(ifaces: InterfaceNames): void {
    if (this.ifaces !== ifaces) {
      // Once per table (init runs again when a reload keeps this stage). The table has no way to
      // unsubscribe, so the listener holds the matcher weakly: a matcher replaced by a reload can go.
      const self = new WeakRef(this);
      ifaces.onRefresh(() => { const m = self.deref(); if (m && m.ifaces === ifaces) m.clearIfCaches(); });
    }
    this.ifaces = ifaces;
    this.clearIfCaches();
  }

  /** Index of the first rule that matches, or -1. */
  first(ctx: MatchInput): number {
    const info = ctx.info;
    const proto = info.proto & 255;
    const pt = this.portOff[proto];
    const oP = pt !== null && pt !== undefined ? pt[info.dport & 0xffff]! : this.protoOff[proto]!;
    const v4 = info.ipVersion === 4;
    const oS = this.srcIx === null ? this.allOff : v4 ? addrClass(this.srcIx, info.src ^ SIGN) : this.srcIx.nonV4;
    const oD = this.dstIx === null ? this.allOff : v4 ? addrClass(this.dstIx, info.dst ^ SIGN) : this.dstIx.nonV4;
    const oH = this.hookOff[ctx.hook + 1] ?? this.hookOff[0]!;
    let inBits: Uint32Array = EMPTY, outBits: Uint32Array = EMPTY, inR = this.allBits, outR = this.allBits;
    if (this.usesIf) {
      inBits = this.ifBits(ctx.indev); outBits = this.ifBits(ctx.outdev);
      inR = this.ifRules(this.inRules, ctx.indev, inBits, this.inClass);
      outR = this.ifRules(this.outRules, ctx.outdev, outBits, this.outClass);
    }
    const a = this.pool, n = this.count;
    for (let k = 0; k < this.words; k++) {
      let w = a[oP + k]! & a[oS + k]! & a[oD + k]! & a[oH + k]! & inR[k]! & outR[k]!;
      while (w !== 0) {
        const r = (k << 5) + (31 - Math.clz32(w & -w));
        if (this.test(r, ctx, inBits, outBits) && this.test(n + r, ctx, inBits, outBits)) return r;
        w &= w - 1;
      }
    }
    return -1;
  }

  /** Diagnostics (benchmarks): how many rules first() tests for this packet. */
  tested(ctx: MatchInput): number {
    let k = 0;
    const r = this.first(ctx);
    for (let i = 0; i < (r < 0 ? this.count : r + 1); i++) {
      // A rule is tested when every prefilter field lets it through; recompute that per rule.
      if (this.passesPrefilter(i, ctx)) k++;
    }
    return k;
  }

  private passesPrefilter(r: number, ctx: MatchInput): boolean {
    const info = ctx.info, bit = (off: number): boolean => ((this.pool[off + (r >>> 5)]! >>> (r & 31)) & 1) === 1;
    const pt = this.portOff[info.proto & 255];
    if (!bit(pt ? pt[info.dport & 0xffff]! : this.protoOff[info.proto & 255]!)) return false;
    const v4 = info.ipVersion === 4;
    if (this.srcIx && !bit(v4 ? addrClass(this.srcIx, info.src ^ SIGN) : this.srcIx.nonV4)) return false;
    if (this.dstIx && !bit(v4 ? addrClass(this.dstIx, info.dst ^ SIGN) : this.dstIx.nonV4)) return false;
    if (!bit(this.hookOff[ctx.hook + 1] ?? this.hookOff[0]!)) return false;
    if (!this.usesIf) return true;
    const inR = this.ifRules(this.inRules, ctx.indev, this.ifBits(ctx.indev), this.inClass);
    const outR = this.ifRules(this.outRules, ctx.outdev, this.ifBits(ctx.outdev), this.outClass);
    return ((inR[r >>> 5]! & outR[r >>> 5]! & (1 << (r & 31))) !== 0);
  }

  /** Rules whose interface constraint (positive row r, `not:` row count + r) holds on ifindex. */
  private ifRules(cache: IfCache, index: number, bits: Uint32Array, cls: Int32Array): Uint32Array {
    const hit = cache.get(index);
    return hit !== undefined ? hit : this.ifRulesSlow(cache, index, bits, cls);
  }

  // Kept out of ifRules()/ifBits(): a closure there would make V8 allocate a context on every call,
  // cache hit or not (measured: ~50 bytes per packet).
  private ifRulesSlow(cache: IfCache, index: number, bits: Uint32Array, cls: Int32Array): Uint32Array {
    const b = new Uint32Array(this.words);
    const member = (c: number): boolean => c >= 0 && ((bits[c >>> 5]! >>> (c & 31)) & 1) === 1;
    for (let r = 0; r < this.count; r++) {
      const p = cls[r]!, q = cls[this.count + r]!;
      if ((p < 0 || member(p)) && (q < 0 || !member(q))) setBit(b, r);
    }
    cache.set(index, b);
    return b;
  }

  /** Whether rule r matches (exported for tests and for stages that scan on their own). */
  matches(r: number, ctx: MatchInput): boolean {
    const inBits = this.usesIf ? this.ifBits(ctx.indev) : EMPTY, outBits = this.usesIf ? this.ifBits(ctx.outdev) : EMPTY;
    return this.test(r, ctx, inBits, outBits) && this.test(this.count + r, ctx, inBits, outBits);
  }

  /** One row: all positive fields match, or (a `not:` row) none of its fields match. */
  private test(r: number, ctx: MatchInput, inBits: Uint32Array, outBits: Uint32Array): boolean {
    const p = this.present[r]!;
    if (p === 0) return true;
    const ng = this.neg[r]!;
    const info = ctx.info;
    let ok: boolean;
    if (p & F_PROTO) {
      const v = info.proto & 255;
      ok = ((this.bm[(r * NB + B_PROTO) * 8 + (v >>> 5)]! >>> (v & 31)) & 1) === 1;
      if (ok === ((ng & F_PROTO) !== 0)) return false;
    }
    if (p & F_DPORT) {
      ok = hasPorts(info.proto, info.isLaterFragment) && this.inRanges(r, R_DPORT, info.dport ^ SIGN);
      if (ok === ((ng & F_DPORT) !== 0)) return false;
    }
    if (p & F_SPORT) {
      ok = hasPorts(info.proto, info.isLaterFragment) && this.inRanges(r, R_SPORT, info.sport ^ SIGN);
      if (ok === ((ng & F_SPORT) !== 0)) return false;
    }
    if (p & F_HOOK) {
      ok = ctx.hook >= 0 && ((this.hookMask[r]! >>> ctx.hook) & 1) === 1;
      if (ok === ((ng & F_HOOK) !== 0)) return false;
    }
    if (p & F_IN) {
      const c = this.inClass[r]!;
      ok = ((inBits[c >>> 5]! >>> (c & 31)) & 1) === 1;
      if (ok === ((ng & F_IN) !== 0)) return false;
    }
    if (p & F_OUT) {
      const c = this.outClass[r]!;
      ok = ((outBits[c >>> 5]! >>> (c & 31)) & 1) === 1;
      if (ok === ((ng & F_OUT) !== 0)) return false;
    }
    if (p & F_SRC) {
      ok = info.ipVersion === 4 && this.srcSet[r]!.hasFlipped(info.src ^ SIGN);
      if (ok === ((ng & F_SRC) !== 0)) return false;
    }
    if (p & F_DST) {
      ok = info.ipVersion === 4 && this.dstSet[r]!.hasFlipped(info.dst ^ SIGN);
      if (ok === ((ng & F_DST) !== 0)) return false;
    }
    if (p & F_ICMP) {
      const v = info.icmpType;
      ok = v >= 0 && ((this.bm[(r * NB + B_ICMP) * 8 + (v >>> 5)]! >>> (v & 31)) & 1) === 1;
      if (ok === ((ng & F_ICMP) !== 0)) return false;
    }
    if (p & F_DHCP) {
      const v = info.dhcpMessageType & 255;
      ok = info.kind === Kind.DHCP && ((this.bm[(r * NB + B_DHCP) * 8 + (v >>> 5)]! >>> (v & 31)) & 1) === 1;
      if (ok === ((ng & F_DHCP) !== 0)) return false;
    }
    if (p & F_IKE) {
      const v = info.ikeExchange & 255;
      ok = info.kind === Kind.IKE && ((this.bm[(r * NB + B_IKE) * 8 + (v >>> 5)]! >>> (v & 31)) & 1) === 1;
      if (ok === ((ng & F_IKE) !== 0)) return false;
    }
    if (p & F_SPI) {
      ok = (info.kind === Kind.ESP || info.kind === Kind.ESP_IN_UDP) && this.inRanges(r, R_SPI, info.espSpi ^ SIGN);
      if (ok === ((ng & F_SPI) !== 0)) return false;
    }
    if (p & F_KIND) {
      ok = ((this.kindMask[r]! >>> info.kind) & 1) === 1;
      if (ok === ((ng & F_KIND) !== 0)) return false;
    }
    if (p & F_MARK) {
      ok = (ctx.mark & this.markMask[r]!) === this.markValue[r];
      if (ok === ((ng & F_MARK) !== 0)) return false;
    }
    if (p & F_LEN) {
      ok = this.inRanges(r, R_LEN, info.totalLength ^ SIGN);
      if (ok === ((ng & F_LEN) !== 0)) return false;
    }
    if (p & F_QUEUE) {
      ok = this.inRanges(r, R_QUEUE, ctx.queue ^ SIGN);
      if (ok === ((ng & F_QUEUE) !== 0)) return false;
    }
    if (p & F_IPVER) {
      ok = info.ipVersion === this.ipVer[r];
      if (ok === ((ng & F_IPVER) !== 0)) return false;
    }
    return true;
  }

  /** v is sign-flipped (x ^ SIGN). */
  private inRanges(r: number, slot: number, v: number): boolean {
    const s = this.rStart[r * NR + slot]!, e = s + this.rCount[r * NR + slot]!;
    for (let i = s; i < e; i++) if (v >= this.rLo[i]! && v <= this.rHi[i]!) return true;
    return false;
  }

  private clearIfCaches(): void {
    this.ifCache = new IfCache();
    this.inRules = new IfCache();
    this.outRules = new IfCache();
  }

  /** Class-membership bits of an interface index (cached; computed once per index per refresh). */
  private ifBits(index: number): Uint32Array {
    if (index <= 0) return EMPTY;
    const hit = this.ifCache.get(index);
    return hit !== undefined ? hit : this.ifBitsSlow(index);
  }

  private ifBitsSlow(index: number): Uint32Array {
    const bits = new Uint32Array(this.ifWords);
    const name = this.ifaces?.nameOf(index);
    if (name !== undefined) {
      this.classes.forEach((globs, c) => { if (globs.some((g) => g.test(name))) bits[c >>> 5] = bits[c >>> 5]! | (1 << (c & 31)); });
    }
    this.ifCache.set(index, bits);
    return bits;
  }
}
