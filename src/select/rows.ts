/**
 * Normalized selectors as structure-of-arrays tables, and the per-selector test every classifier in
 * this module ends with: all positive fields match and no `not:` field does. Only numbers are
 * compared; no allocation, no strings, no throws. Interface globs are resolved to per-ifindex
 * class bits, cached per index and dropped when the interface table refreshes (a new ipsec0 / ppp0
 * is picked up without a reload).
 *
 * Row s (0 ≤ s < count) holds selector s's positive fields, row count + s its `not:` fields.
 */
import { Kind, type Classified } from '../packet/classify';
import { IpProto } from '../packet/ipv4';
import { AddrRanges } from './addr';
import { shareArray } from './shared';
import { globToRegExp } from './glob';
import type { NormSelector, Range } from './selector';

/** What a selector looks at: the packet's classification and its queue metadata (the engine's PacketContext). */
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

// Range-valued fields, index into the per-row range table.
export const R_SPORT = 0, R_DPORT = 1, R_SPI = 2, R_LEN = 3, R_QUEUE = 4;
export const NR = 5;
// 256-bit bitmaps (8 words) per row.
const B_PROTO = 0, B_ICMP = 1, B_DHCP = 2, B_IKE = 3, NB = 4;

export const EMPTY_BITS: Uint32Array = new Uint32Array(1);
export const SIGN = 0x80000000 | 0;
export const flip = (x: number): number => (x ^ SIGN);
export const unflip = (x: number): number => (x ^ SIGN) >>> 0;
const hasPorts = (proto: number, laterFragment: boolean): boolean => (proto === IpProto.TCP || proto === IpProto.UDP) && !laterFragment;

/** ifindex → bitset. Interface indexes are small in practice: a dense array below 4096, a Map above. */
export class IfCache {
  private readonly dense: (Uint32Array | undefined)[] = new Array(4096).fill(undefined);
  private readonly sparse = new Map<number, Uint32Array>();
  get(i: number): Uint32Array | undefined { return i < 4096 ? this.dense[i] : this.sparse.get(i); }
  set(i: number, b: Uint32Array): void { if (i < 4096) this.dense[i] = b; else this.sparse.set(i, b); }
}

/**
 * Address sets of every row packed into four arrays (one SharedArrayBuffer each, however many rows:
 * postMessage clones one object per array, and 10,000 rules with their own would take longer to
 * hand over than to compile); set r is [start[r], start[r] + count[r]), count -1 for none.
 */
export interface PackedSets { lo: Uint32Array; hi: Uint32Array; flo: Int32Array; fhi: Int32Array; start: Int32Array; count: Int32Array }

function packSets(sets: readonly (AddrRanges | null)[]): PackedSets {
  let n = 0;
  for (const a of sets) if (a) n += a.lo.length;
  const p: PackedSets = {
    lo: new Uint32Array(new SharedArrayBuffer(n * 4)), hi: new Uint32Array(new SharedArrayBuffer(n * 4)),
    flo: new Int32Array(new SharedArrayBuffer(n * 4)), fhi: new Int32Array(new SharedArrayBuffer(n * 4)),
    start: new Int32Array(new SharedArrayBuffer(sets.length * 4)), count: new Int32Array(new SharedArrayBuffer(sets.length * 4)),
  };
  let at = 0;
  sets.forEach((a, r) => {
    p.start[r] = at;
    if (!a) { p.count[r] = -1; return; }
    const f = a.flipped();
    p.lo.set(a.lo, at); p.hi.set(a.hi, at); p.flo.set(f.flo, at); p.fhi.set(f.fhi, at);
    p.count[r] = a.lo.length;
    at += a.lo.length;
  });
  return p;
}

/** The sets of a PackedSets as AddrRanges over views of its arrays (nothing copied). */
function unpackSets(p: PackedSets): (AddrRanges | null)[] {
  const out: (AddrRanges | null)[] = [];
  for (let r = 0; r < p.start.length; r++) {
    const s = p.start[r]!, c = p.count[r]!;
    out.push(c < 0 ? null : new AddrRanges(p.lo.subarray(s, s + c), p.hi.subarray(s, s + c), { flo: p.flo.subarray(s, s + c), fhi: p.fhi.subarray(s, s + c) }));
  }
  return out;
}

/** A SelectorTable's compiled fields (src/select/shared.ts); the interface caches stay per thread. */
export interface SelectorTableImage {
  count: number; present: Uint32Array; neg: Uint32Array; hookMask: Uint32Array; inClass: Int32Array; outClass: Int32Array;
  sets: PackedSets; bm: Uint32Array; kindMask: Uint32Array;
  rStart: Int32Array; rCount: Int32Array; rLo: Int32Array; rHi: Int32Array; markValue: Int32Array; markMask: Int32Array;
  ipVer: Uint8Array; classes: RegExp[][]; ifWords: number; usesIf: boolean;
}

export class SelectorTable {
  /** Number of selectors. */
  readonly count: number;
  readonly present: Uint32Array;
  private readonly neg: Uint32Array;
  readonly hookMask: Uint32Array;
  readonly inClass: Int32Array;
  readonly outClass: Int32Array;
  private readonly srcSet: (AddrRanges | null)[];
  private readonly dstSet: (AddrRanges | null)[];
  readonly bm: Uint32Array;
  private readonly kindMask: Uint32Array;
  readonly rStart: Int32Array;
  readonly rCount: Int32Array;
  // Range bounds stored sign-flipped (x ^ 0x80000000, as int32): unsigned order becomes signed order,
  // and values passed around stay small integers. A uint32 ≥ 2^31 (addresses, SPIs) passed to a
  // function that is not inlined would be boxed in a fresh HeapNumber: one allocation per packet.
  readonly rLo: Int32Array;
  readonly rHi: Int32Array;
  private readonly markValue: Int32Array;
  private readonly markMask: Int32Array;
  private readonly ipVer: Uint8Array;
  // Interface classes (distinct glob lists) and their per-ifindex membership bits.
  private readonly classes: RegExp[][] = [];
  private readonly ifWords: number;
  private ifCache = new IfCache();
  private ifaces: InterfaceNames | null = null;
  readonly usesIf: boolean;
  private readonly onClear: (() => void)[] = [];

  constructor(sels: readonly NormSelector[]) {
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
  }

  /** The table as a read-only image over SharedArrayBuffers (src/select/shared.ts). */
  image(): SelectorTableImage {
    return {
      count: this.count, present: shareArray(this.present), neg: shareArray(this.neg), hookMask: shareArray(this.hookMask),
      inClass: shareArray(this.inClass), outClass: shareArray(this.outClass), sets: packSets([...this.srcSet, ...this.dstSet]),
      bm: shareArray(this.bm), kindMask: shareArray(this.kindMask), rStart: shareArray(this.rStart), rCount: shareArray(this.rCount),
      rLo: shareArray(this.rLo), rHi: shareArray(this.rHi), markValue: shareArray(this.markValue), markMask: shareArray(this.markMask),
      ipVer: shareArray(this.ipVer), classes: this.classes, ifWords: this.ifWords, usesIf: this.usesIf,
    };
  }

  /**
   * A table over an image's arrays (no copy). Built through the constructor (an empty table) and then
   * given the image's fields, so that it has the same shape as every other table of this thread.
   */
  static fromImage(im: SelectorTableImage): SelectorTable {
    const { sets, ...fields } = im;
    const all = unpackSets(sets);
    return Object.assign(new SelectorTable([]), { ...fields, srcSet: all.slice(0, all.length / 2), dstSet: all.slice(all.length / 2) });
  }

  /** Whether protocol `proto` passes row r's protocol field (a positive row: in the list). */
  inProto(row: number, proto: number): boolean {
    return (this.bm[(row * NB + B_PROTO) * 8 + (proto >>> 5)]! >>> (proto & 31) & 1) === 1;
  }

  /** Resolves interface globs against this table (and again whenever it refreshes). */
  bind(ifaces: InterfaceNames): void {
    if (this.ifaces !== ifaces) {
      // Once per table (init runs again when a reload keeps this stage). The table has no way to
      // unsubscribe, so the listener holds this weakly: a matcher replaced by a reload can go.
      const self = new WeakRef(this);
      ifaces.onRefresh(() => { const m = self.deref(); if (m && m.ifaces === ifaces) m.clearIfCaches(); });
    }
    this.ifaces = ifaces;
    this.clearIfCaches();
  }

  /** Registers a cache of the user's that depends on interface names (cleared with this one's). */
  onClearIfCaches(f: () => void): void { this.onClear.push(f); }

  /** Whether selector s matches. */
  matches(s: number, ctx: MatchInput): boolean {
    const inBits = this.usesIf ? this.ifBits(ctx.indev) : EMPTY_BITS, outBits = this.usesIf ? this.ifBits(ctx.outdev) : EMPTY_BITS;
    return this.test(s, ctx, inBits, outBits) && this.test(this.count + s, ctx, inBits, outBits);
  }

  /** One row: all positive fields match, or (a `not:` row) none of its fields match. */
  test(r: number, ctx: MatchInput, inBits: Uint32Array, outBits: Uint32Array): boolean {
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
  inRanges(r: number, slot: number, v: number): boolean {
    const s = this.rStart[r * NR + slot]!, e = s + this.rCount[r * NR + slot]!;
    for (let i = s; i < e; i++) if (v >= this.rLo[i]! && v <= this.rHi[i]!) return true;
    return false;
  }

  private clearIfCaches(): void {
    this.ifCache = new IfCache();
    for (const f of this.onClear) f();
  }

  /** Class-membership bits of an interface index (cached; computed once per index per refresh). */
  ifBits(index: number): Uint32Array {
    if (index <= 0) return EMPTY_BITS;
    const hit = this.ifCache.get(index);
    return hit !== undefined ? hit : this.ifBitsSlow(index);
  }

  // Kept out of ifBits(): a closure there would make V8 allocate a context on every call, cache hit
  // or not (measured: ~50 bytes per packet).
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
