/**
 * Shadowed-rule detection for `sluice check`: rule j can never match when an earlier rule i matches
 * every packet j would (first match wins). covers(i, j) is conservative: it answers true only when it
 * can prove containment field by field, so a warning is always real; a rule shadowed only by the
 * union of several earlier rules is not reported.
 */
import { globToRegExp } from './glob';
import type { NormFields, NormSelector, Range } from './selector';

const subsetNums = (b: number[], a: number[]): boolean => b.every((x) => a.includes(x));
const disjointNums = (b: number[], a: number[]): boolean => b.every((x) => !a.includes(x));
const subsetRanges = (b: Range[], a: Range[]): boolean => b.every(([lo, hi]) => a.some(([x, y]) => x <= lo && hi <= y));
const disjointRanges = (b: Range[], a: Range[]): boolean => b.every(([lo, hi]) => a.every(([x, y]) => hi < x || y < lo));
const hasWild = (g: string): boolean => /[*?]/.test(g);
/** Every interface b's globs can name is named by a's. */
const subsetGlobs = (b: string[], a: string[]): boolean =>
  b.every((g) => a.includes(g) || a.includes('*') || (!hasWild(g) && a.some((x) => globToRegExp(x).test(g))));
const disjointGlobs = (b: string[], a: string[]): boolean =>
  b.every((g) => !hasWild(g) && a.every((x) => !globToRegExp(x).test(g)));

type Key = Exclude<keyof NormFields, 'srcSpec' | 'dstSpec'>;
const KEYS: Key[] = ['hook', 'in', 'out', 'src', 'dst', 'proto', 'sport', 'dport', 'icmp_type', 'dhcp_type',
  'ike_exchange', 'esp_spi', 'kind', 'mark', 'length', 'queue', 'ip_version'];

/** Values of b (for field k) are all among a's. */
function subset(k: Key, b: NormFields, a: NormFields): boolean {
  switch (k) {
    case 'hook': return (b.hook! & ~a.hook!) === 0;
    case 'in': case 'out': return subsetGlobs(b[k]!, a[k]!);
    case 'src': case 'dst': return a[k]!.covers(b[k]!);
    case 'proto': case 'icmp_type': case 'dhcp_type': case 'ike_exchange': case 'kind': return subsetNums(b[k]!, a[k]!);
    case 'sport': case 'dport': case 'esp_spi': case 'length': case 'queue': return subsetRanges(b[k]!, a[k]!);
    case 'mark': return (a.mark!.mask & ~b.mark!.mask) === 0 && ((b.mark!.value & a.mark!.mask) >>> 0) === a.mark!.value;
    case 'ip_version': return b.ip_version === a.ip_version;
  }
}

/** No value of b (for field k) is among a's. */
function disjoint(k: Key, b: NormFields, a: NormFields): boolean {
  switch (k) {
    case 'hook': return (b.hook! & a.hook!) === 0;
    case 'in': case 'out': return disjointGlobs(b[k]!, a[k]!);
    case 'src': case 'dst': return a[k]!.disjoint(b[k]!);
    case 'proto': case 'icmp_type': case 'dhcp_type': case 'ike_exchange': case 'kind': return disjointNums(b[k]!, a[k]!);
    case 'sport': case 'dport': case 'esp_spi': case 'length': case 'queue': return disjointRanges(b[k]!, a[k]!);
    case 'mark': {
      const common = a.mark!.mask & b.mark!.mask;
      return ((a.mark!.value & common) >>> 0) !== ((b.mark!.value & common) >>> 0);
    }
    case 'ip_version': return b.ip_version !== a.ip_version;
  }
}

/** Every packet that matches b also matches a. */
export function covers(a: NormSelector, b: NormSelector): boolean {
  for (const k of KEYS) {
    if (a.pos[k] !== undefined) {
      if (b.pos[k] === undefined || !subset(k, b.pos, a.pos)) return false;
    }
    if (a.not[k] !== undefined) {
      // b must rule out everything a's `not:` excludes: b excludes a superset, or b's values avoid it.
      const viaNot = b.not[k] !== undefined && subset(k, a.not, b.not);
      const viaPos = b.pos[k] !== undefined && disjoint(k, b.pos, a.not);
      if (!viaNot && !viaPos) return false;
    }
  }
  return true;
}

/** Warnings "X can never match: Y above matches every packet it would". */
export function shadowWarnings(what: string, names: string[], sels: NormSelector[]): string[] {
  const out: string[] = [];
  for (let j = 1; j < sels.length; j++) {
    for (let i = 0; i < j; i++) {
      if (covers(sels[i]!, sels[j]!)) {
        out.push(`${what} ${names[j]} (#${j + 1}) can never match: ${what} ${names[i]} (#${i + 1}) above it matches every packet it would`);
        break;
      }
    }
  }
  return out;
}
