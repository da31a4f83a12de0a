/**
 * Ordered first-match over normalized selectors, compiled once (at load and at reload).
 *
 * Per packet: pick the candidate list for the packet's protocol (and, for TCP/UDP, for its destination
 * port: rules whose `dport` cannot match are not in the list), then test the candidates in rule order
 * against structure-of-arrays tables. Only numbers are compared; no allocation, no strings, no throws.
 * Interface globs are resolved to per-ifindex bit sets, cached per index and dropped when the
 * interface table refreshes (a new ipsec0 / ppp0 is picked up without a reload).
 */
import type { PacketContext } from '../engine/stage';
import type { Interfaces } from '../io/interfaces';
import { globToRegExp } from '../io/interfaces';
import type { AddrRanges } from './addr';
import type { NormSelector, Range } from './selector';

// Field bits (present / negated masks).
export const F_HOOK = 1, F_IN = 2, F_OUT = 4, F_SRC = 8, F_DST = 16, F_PROTO = 32, F_SPORT = 64,
  F_DPORT = 128, F_ICMP = 256, F_DHCP = 512, F_IKE = 1024, F_SPI = 2048, F_KIND = 4096, F_MARK = 8192,
  F_LEN = 16384, F_QUEUE = 32768, F_IPVER = 65536;

// Range-valued fields, index into the per-rule range table.
const R_SPORT = 0, R_DPORT = 1, R_SPI = 2, R_LEN = 3, R_QUEUE = 4, NR = 5;
// 256-bit bitmaps (8 words) per rule.
const B_PROTO = 0, B_ICMP = 1, B_DHCP = 2, B_IKE = 3, NB = 4;

const KIND_DHCP = 5, KIND_IKE = 3, KIND_ESP = 1, KIND_ESP_IN_UDP = 2;
const EMPTY: Uint32Array = new Uint32Array(1);

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
  private readonly rLo: Uint32Array;
  private readonly rHi: Uint32Array;
  private readonly markValue: Uint32Array;
  private readonly markMask: Uint32Array;
  private readonly ipVer: Uint8Array;
  // Interface classes (distinct glob lists) and their per-ifindex membership bits.
  private readonly classes: RegExp[][] = [];
  private readonly ifWords: number;
  private ifCache = new Map<number, Uint32Array>();
  private ifaces: Interfaces | null = null;
  private readonly usesIf: boolean;
  // Candidate lists: protoList[p] → list id, or for TCP/UDP with port buckets, portList[p][dport].
  private readonly listStart: Int32Array;
  private readonly listLen: Int32Array;
  private readonly listPool: Int32Array;
  private readonly protoList = new Int32Array(256);
  private readonly portList: (Int32Array | null)[] = new Array(256).fill(null);

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
    this.markValue = new Uint32Array(n);
    this.markMask = new Uint32Array(n);
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
    this.rLo = Uint32Array.from(lo);
    this.rHi = Uint32Array.from(hi);
    this.ifWords = Math.max(1, Math.ceil(this.classes.length / 32));
    this.usesIf = this.classes.length > 0;

    // Candidate lists. A rule is left out of a list only where it provably cannot match.
    const lists: Int32Array[] = [];
    const listIds = new Map<string, number>();
    const addList = (rules: number[]): number => {
      const key = rules.join(',');
      let id = listIds.get(key);
      if (id === undefined) { id = lists.length; listIds.set(key, id); lists.push(Int32Array.from(rules)); }
      return id;
    };
    const inProto = (row: number, proto: number): boolean =>
      (this.bm[(row * NB + B_PROTO) * 8 + (proto >>> 5)]! >>> (proto & 31) & 1) === 1;
    const protoOk = (r: number, proto: number): boolean =>
      (!(this.present[r]! & F_PROTO) || inProto(r, proto)) &&
      (!(this.present[this.count + r]! & F_PROTO) || !inProto(this.count + r, proto));
    for (let proto = 0; proto < 256; proto++) {
      const rules: number[] = [];
      for (let r = 0; r < this.count; r++) if (protoOk(r, proto)) rules.push(r);
      this.protoList[proto] = addList(rules);
      if (proto !== 6 && proto !== 17) continue;
      const positiveDport = (r: number): boolean => (this.present[r]! & F_DPORT) !== 0;
      if (!rules.some(positiveDport)) continue;
      // Sweep the port space: between two range boundaries the candidate set is constant.
      const cuts = new Set<number>([0]);
      for (const r of rules) {
        if (!positiveDport(r)) continue;
        const s = this.rStart[r * NR + R_DPORT]!, c = this.rCount[r * NR + R_DPORT]!;
        for (let i = s; i < s + c; i++) { cuts.add(this.rLo[i]!); if (this.rHi[i]! < 65535) cuts.add(this.rHi[i]! + 1); }
      }
      const sorted = [...cuts].sort((a, b) => a - b);
      const table = new Int32Array(65536);
      for (let k = 0; k < sorted.length; k++) {
        const a = sorted[k]!, b = k + 1 < sorted.length ? sorted[k + 1]! - 1 : 65535;
        const seg = rules.filter((r) => !positiveDport(r) || this.inRanges(r, R_DPORT, a));
        table.fill(addList(seg), a, b + 1);
      }
      this.portList[proto] = table;
    }
    let total = 0;
    for (const l of lists) total += l.length;
    this.listPool = new Int32Array(total);
    this.listStart = new Int32Array(lists.length);
    this.listLen = new Int32Array(lists.length);
    let at = 0;
    lists.forEach((l, i) => { this.listStart[i] = at; this.listLen[i] = l.length; this.listPool.set(l, at); at += l.length; });
  }

  /** Resolves interface globs against this table (and again whenever it refreshes). */
  bind(ifaces: Interfaces): void {
    if (this.ifaces !== ifaces) {
      // Once per table (init runs again when a reload keeps this stage): no listener pile-up.
      ifaces.onRefresh(() => { if (this.ifaces === ifaces) this.ifCache = new Map(); });
    }
    this.ifaces = ifaces;
    this.ifCache = new Map();
  }

  /** Index of the first rule that matches, or -1. */
  first(ctx: PacketContext): number {
    const info = ctx.info;
    const proto = info.proto & 255;
    const pt = this.portList[proto];
    const list = pt !== null && pt !== undefined ? pt[info.dport & 0xffff]! : this.protoList[proto]!;
    const s = this.listStart[list]!, e = s + this.listLen[list]!;
    let inBits: Uint32Array = EMPTY, outBits: Uint32Array = EMPTY;
    if (this.usesIf) { inBits = this.ifBits(ctx.indev); outBits = this.ifBits(ctx.outdev); }
    const pool = this.listPool;
    for (let i = s; i < e; i++) {
      const r = pool[i]!;
      if (this.test(r, ctx, inBits, outBits) && this.test(this.count + r, ctx, inBits, outBits)) return r;
    }
    return -1;
  }

  /** Whether rule r matches (exported for tests and for stages that scan on their own). */
  matches(r: number, ctx: PacketContext): boolean {
    const inBits = this.usesIf ? this.ifBits(ctx.indev) : EMPTY, outBits = this.usesIf ? this.ifBits(ctx.outdev) : EMPTY;
    return this.test(r, ctx, inBits, outBits) && this.test(this.count + r, ctx, inBits, outBits);
  }

  /** One row: all positive fields match, or (a `not:` row) none of its fields match. */
  private test(r: number, ctx: PacketContext, inBits: Uint32Array, outBits: Uint32Array): boolean {
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
      ok = hasPorts(info.proto, info.isLaterFragment) && this.inRanges(r, R_DPORT, info.dport);
      if (ok === ((ng & F_DPORT) !== 0)) return false;
    }
    if (p & F_SPORT) {
      ok = hasPorts(info.proto, info.isLaterFragment) && this.inRanges(r, R_SPORT, info.sport);
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
      ok = info.ipVersion === 4 && this.srcSet[r]!.has(info.src);
      if (ok === ((ng & F_SRC) !== 0)) return false;
    }
    if (p & F_DST) {
      ok = info.ipVersion === 4 && this.dstSet[r]!.has(info.dst);
      if (ok === ((ng & F_DST) !== 0)) return false;
    }
    if (p & F_ICMP) {
      const v = info.icmpType;
      ok = v >= 0 && ((this.bm[(r * NB + B_ICMP) * 8 + (v >>> 5)]! >>> (v & 31)) & 1) === 1;
      if (ok === ((ng & F_ICMP) !== 0)) return false;
    }
    if (p & F_DHCP) {
      const v = info.dhcpMessageType & 255;
      ok = info.kind === KIND_DHCP && ((this.bm[(r * NB + B_DHCP) * 8 + (v >>> 5)]! >>> (v & 31)) & 1) === 1;
      if (ok === ((ng & F_DHCP) !== 0)) return false;
    }
    if (p & F_IKE) {
      const v = info.ikeExchange & 255;
      ok = info.kind === KIND_IKE && ((this.bm[(r * NB + B_IKE) * 8 + (v >>> 5)]! >>> (v & 31)) & 1) === 1;
      if (ok === ((ng & F_IKE) !== 0)) return false;
    }
    if (p & F_SPI) {
      ok = (info.kind === KIND_ESP || info.kind === KIND_ESP_IN_UDP) && this.inRanges(r, R_SPI, info.espSpi);
      if (ok === ((ng & F_SPI) !== 0)) return false;
    }
    if (p & F_KIND) {
      ok = ((this.kindMask[r]! >>> info.kind) & 1) === 1;
      if (ok === ((ng & F_KIND) !== 0)) return false;
    }
    if (p & F_MARK) {
      ok = ((ctx.mark & this.markMask[r]!) >>> 0) === this.markValue[r];
      if (ok === ((ng & F_MARK) !== 0)) return false;
    }
    if (p & F_LEN) {
      ok = this.inRanges(r, R_LEN, info.totalLength);
      if (ok === ((ng & F_LEN) !== 0)) return false;
    }
    if (p & F_QUEUE) {
      ok = this.inRanges(r, R_QUEUE, ctx.queue);
      if (ok === ((ng & F_QUEUE) !== 0)) return false;
    }
    if (p & F_IPVER) {
      ok = info.ipVersion === this.ipVer[r];
      if (ok === ((ng & F_IPVER) !== 0)) return false;
    }
    return true;
  }

  private inRanges(r: number, slot: number, v: number): boolean {
    const s = this.rStart[r * NR + slot]!, e = s + this.rCount[r * NR + slot]!;
    for (let i = s; i < e; i++) if (v >= this.rLo[i]! && v <= this.rHi[i]!) return true;
    return false;
  }

  /** Class-membership bits of an interface index (cached; computed once per index per refresh). */
  private ifBits(index: number): Uint32Array {
    if (index <= 0) return EMPTY;
    const hit = this.ifCache.get(index);
    if (hit !== undefined) return hit;
    const bits = new Uint32Array(this.ifWords);
    const name = this.ifaces?.nameOf(index);
    if (name !== undefined) {
      this.classes.forEach((globs, c) => { if (globs.some((g) => g.test(name))) bits[c >>> 5] = bits[c >>> 5]! | (1 << (c & 31)); });
    }
    this.ifCache.set(index, bits);
    return bits;
  }
}

function hasPorts(proto: number, laterFragment: boolean): boolean {
  return (proto === 6 || proto === 17) && !laterFragment;
}
