/**
 * IPv4 prefixes and address sets, compiled into sorted, merged [lo, hi] ranges so that a set of any
 * size is tested with one binary search over two Uint32Arrays (no allocation per packet).
 *
 * Config spelling: `10.0.0.0/8`, `192.0.2.7` (a /32), `any` (0.0.0.0/0), or `@name` for a named set
 * from the section's `address_sets:`. Sets may name other sets; cycles are config errors.
 */
import { ip4 } from '../packet/bytes';

export const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** True for `a.b.c.d`, `a.b.c.d/len`, `any` and `@name` (names resolved later). */
export function isAddressSpec(s: string): boolean {
  if (s === 'any' || /^@[A-Za-z0-9_.-]+$/.test(s)) return true;
  const [a, l, ...rest] = s.split('/');
  if (rest.length > 0 || a === undefined || !IPV4_RE.test(a)) return false;
  return l === undefined || (/^\d{1,2}$/.test(l) && Number(l) <= 32);
}

/** [lo, hi] of a prefix; the host bits of the address are ignored (as iptables does). */
export function prefixRange(spec: string): [number, number] {
  if (spec === 'any') return [0, 0xffffffff];
  const [a, l] = spec.split('/');
  const len = l === undefined ? 32 : Number(l);
  const addr = ip4(a!);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const lo = (addr & mask) >>> 0;
  return [lo, (lo | ~mask) >>> 0];
}

/** A compiled address set: disjoint, sorted, merged ranges. */
export class AddrRanges {
  /** The bounds sign-flipped (x ^ 0x80000000 as int32) for hasFlipped(): see src/select/match.ts. */
  private readonly flo: Int32Array;
  private readonly fhi: Int32Array;
  constructor(readonly lo: Uint32Array, readonly hi: Uint32Array, flipped?: { flo: Int32Array; fhi: Int32Array }) {
    this.flo = flipped?.flo ?? Int32Array.from(lo, (x) => x ^ 0x80000000);
    this.fhi = flipped?.fhi ?? Int32Array.from(hi, (x) => x ^ 0x80000000);
  }

  /** The sign-flipped bounds (SelectorTable packs them into its shared image). */
  flipped(): { flo: Int32Array; fhi: Int32Array } {
    return { flo: this.flo, fhi: this.fhi };
  }

  /** has() for a sign-flipped address (a ^ 0x80000000): the hot-path form, no HeapNumber. */
  hasFlipped(a: number): boolean {
    const lo = this.flo, hi = this.fhi;
    let l = 0, h = lo.length - 1;
    while (l <= h) {
      const m = (l + h) >>> 1;
      if (a < lo[m]!) h = m - 1;
      else if (a > hi[m]!) l = m + 1;
      else return true;
    }
    return false;
  }

  static from(ranges: [number, number][]): AddrRanges {
    const sorted = [...ranges].sort((x, y) => x[0] - y[0]);
    const out: [number, number][] = [];
    for (const r of sorted) {
      const last = out[out.length - 1];
      if (last && r[0] <= last[1] + 1) { if (r[1] > last[1]) last[1] = r[1]; } else out.push([r[0], r[1]]);
    }
    return new AddrRanges(Uint32Array.from(out.map((r) => r[0])), Uint32Array.from(out.map((r) => r[1])));
  }

  /** Flipping the sign bit keeps the order, so one search serves both forms. */
  has(a: number): boolean {
    return this.hasFlipped(a ^ 0x80000000);
  }

  /** Every address of `o` is in this set. */
  covers(o: AddrRanges): boolean {
    for (let i = 0; i < o.lo.length; i++) {
      let ok = false;
      for (let j = 0; j < this.lo.length; j++) if (this.lo[j]! <= o.lo[i]! && o.hi[i]! <= this.hi[j]!) { ok = true; break; }
      if (!ok) return false;
    }
    return true;
  }

  /** No address in common. */
  disjoint(o: AddrRanges): boolean {
    for (let i = 0; i < o.lo.length; i++) {
      for (let j = 0; j < this.lo.length; j++) if (this.lo[j]! <= o.hi[i]! && o.lo[i]! <= this.hi[j]!) return false;
    }
    return true;
  }

  isAll(): boolean { return this.lo.length === 1 && this.lo[0] === 0 && this.hi[0] === 0xffffffff; }
}

export type AddressSets = Record<string, string[]>;

/** Expands `@name` references (recursively) into plain prefixes; throws on unknown names and cycles. */
export function expandAddresses(specs: readonly string[], sets: AddressSets, seen: string[] = []): string[] {
  const out: string[] = [];
  for (const s of specs) {
    if (s.startsWith('@')) {
      const name = s.slice(1);
      const body = sets[name];
      if (body === undefined) throw new Error(`unknown address set @${name}`);
      if (seen.includes(name)) throw new Error(`address set @${name} refers to itself (${[...seen, name].join(' → ')})`);
      // A loop, not push(...): a set of 100k elements is more arguments than a call may take.
      for (const x of expandAddresses(body, sets, [...seen, name])) out.push(x);
    } else {
      out.push(s);
    }
  }
  return out;
}

export function compileAddresses(specs: readonly string[], sets: AddressSets): AddrRanges {
  return AddrRanges.from(expandAddresses(specs, sets).map(prefixRange));
}
