/**
 * The classifier the stages use: ordered first match whose cost does not grow with the rule count
 * for the shapes gateways write (prefixes, exact ports and protocols, marks under a mask, SPIs,
 * packet kinds, hooks). Tuple-space search (Srinivasan, Suri & Varghese, SIGCOMM 1999; the Open
 * vSwitch classifier): every rule is filed under a *tuple* — which key fields it constrains and with
 * which mask (prefix length) — in one hash table per tuple, keyed by the masked values. Per packet:
 * the key fields are read once; each tuple is probed once (mask, hash, compare); a hit yields the
 * rules filed under that exact key, in rule order, and each is then tested in full
 * (src/select/rows.ts), so what the index leaves out (`not:`, wide ranges, interface globs, lengths)
 * is still decided exactly. Tuples are visited in order of their first rule and the search stops
 * when no tuple can hold an earlier rule than the best match so far: first-match semantics stay
 * exactly those of a linear scan (the differential test in match.test.ts checks that against the
 * reference classifiers).
 *
 * Cost: one probe per tuple (a handful for real rule sets: the bench's 10,000 rules make 11), plus
 * the rules sharing the packet's keys. A rule with no indexable field goes to the wildcard tuple,
 * searched by the bit-vector classifier (src/select/bitvector.ts) over those rules only.
 * Map rows (maps: in the config) carry their element as an index-only key: the element decides
 * membership exactly, so 100,000 elements are one tuple probe.
 */
import { Kind } from '../packet/classify';
import { BitvectorMatcher, type BitvectorImage } from './bitvector';
import { shareArray } from './shared';
import { runSteps, runStepsSliced, type Steps } from './steps';
import { layOutTuples, type TupleBuild } from './tuple-layout';
import { EMPTY_BITS, SelectorTable, type InterfaceNames, type MatchInput, type SelectorTableImage } from './rows';
import type { NormSelector } from './selector';

export type { MatchInput, InterfaceNames } from './rows';

// Key fields, in the order the per-packet key is read.
const K_SRC = 0, K_DST = 1, K_PROTO = 2, K_SPORT = 3, K_DPORT = 4, K_SPI = 5, K_MARK = 6, K_KIND = 7, K_APP = 8, K_HOOK = 9;
const NK = 10;
/** Ranges (ports, SPIs) are filed value by value up to this many values; wider ones are left to the test. */
const MAX_RANGE_VALUES = 64;
/** A rule's entries: the cross product of its kept fields' values, at most this (or its largest field). */
const CROSS_LIMIT = 64;
/**
 * Up to this many rows (and no map rows) the bit-vector classifier alone is cheaper: two words per
 * field to AND beat a handful of hash probes (bench/steer.bench.ts: 10 rules ~30 ns vs ~60 ns).
 */
export const SMALL_RULE_SET = 64;

/** A map element as an index-only key of one row: field value under mask. */
export interface RowKey { field: 'src' | 'dst' | 'sport' | 'dport' | 'esp_spi'; value: number; mask: number }
/** One row of the classifier: a selector (by index) and, for a map element, its key. */
export interface MatchRow { sel: number; key?: RowKey }

const KEY_FIELD: Record<RowKey['field'], number> = { src: K_SRC, dst: K_DST, sport: K_SPORT, dport: K_DPORT, esp_spi: K_SPI };
// What a map key's field needs of the packet before its value means anything (as the selector test
// requires for src/dst, ports and SPIs): an IPv4 header, a TCP/UDP header, an ESP header.
const G_V4 = 1, G_PORTS = 2, G_ESP = 4;
const KEY_GUARD: Record<RowKey['field'], number> = { src: G_V4, dst: G_V4, sport: G_PORTS, dport: G_PORTS, esp_spi: G_ESP };

type Alt = [value: number, mask: number];

/** [lo, hi] as the fewest CIDR blocks: [network, mask] pairs. */
export function rangeToCidrs(lo: number, hi: number, out: Alt[] = []): Alt[] {
  let a = lo;
  while (a <= hi) {
    let size = 1;
    // Largest aligned block starting at a that stays within hi.
    while (size < 0x100000000 && a % (size * 2) === 0 && a + size * 2 - 1 <= hi) size *= 2;
    const len = 32 - Math.log2(size);
    out.push([a | 0, len === 0 ? 0 : (0xffffffff << (32 - len)) | 0]);
    a += size;
  }
  return out;
}

function rangeValues(rs: [number, number][] | undefined): Alt[] | undefined {
  if (!rs) return undefined;
  let n = 0;
  for (const [a, b] of rs) n += b - a + 1;
  if (n > MAX_RANGE_VALUES) return undefined;
  const out: Alt[] = [];
  for (const [a, b] of rs) for (let v = a; v <= b; v++) out.push([v | 0, -1]);
  return out;
}

const exact = (vs: number[]): Alt[] => [...new Set(vs)].map((v) => [v | 0, -1]);

/** Per key field, the values (under masks) a selector's positive side admits, or undefined: any. */
function alternatives(s: NormSelector): (Alt[] | undefined)[] {
  const p = s.pos;
  const a: (Alt[] | undefined)[] = new Array(NK).fill(undefined);
  const addr = (r: NormSelector['pos']['src']): Alt[] | undefined => {
    if (!r || r.isAll()) return undefined;
    const out: Alt[] = [];
    for (let i = 0; i < r.lo.length; i++) rangeToCidrs(r.lo[i]!, r.hi[i]!, out);
    return out;
  };
  a[K_SRC] = addr(p.src);
  a[K_DST] = addr(p.dst);
  if (p.proto) a[K_PROTO] = exact(p.proto);
  a[K_SPORT] = rangeValues(p.sport);
  a[K_DPORT] = rangeValues(p.dport);
  a[K_SPI] = rangeValues(p.esp_spi);
  if (p.mark) a[K_MARK] = [[p.mark.value | 0, p.mark.mask | 0]];
  if (p.hook !== undefined) a[K_HOOK] = exact([0, 1, 2, 3, 4].filter((h) => (p.hook! >>> h) & 1));
  // Kinds: the listed ones, narrowed by what other fields imply (dhcp_type: DHCP, ike_exchange: IKE,
  // esp_spi: ESP or ESP-in-UDP). The DHCP type or IKE exchange itself is the "app" key.
  let kinds: number[] | undefined = p.kind ? [...p.kind] : undefined;
  const narrow = (ks: number[]): void => { kinds = kinds ? kinds.filter((k) => ks.includes(k)) : ks; };
  if (p.dhcp_type) narrow([Kind.DHCP]);
  if (p.ike_exchange) narrow([Kind.IKE]);
  if (p.esp_spi) narrow([Kind.ESP, Kind.ESP_IN_UDP]);
  if (kinds && kinds.length > 0) a[K_KIND] = exact(kinds);
  if (p.dhcp_type && !p.ike_exchange) a[K_APP] = exact(p.dhcp_type);
  else if (p.ike_exchange && !p.dhcp_type) a[K_APP] = exact(p.ike_exchange);
  for (let f = 0; f < NK; f++) if (a[f] && a[f]!.length === 0) a[f] = undefined;
  return a;
}

/** Every row filed under its tuple and keys (or as a wildcard row): the compile's per-rule part. */
export interface FiledRows { builds: Map<string, TupleBuild>; wild: number[] }

function* fileRows(sels: NormSelector[], rs: MatchRow[], small: boolean): Steps<FiledRows> {
  const altsOf: (Alt[] | undefined)[][] = [];
  for (let i = 0; i < sels.length; i++) { altsOf.push(alternatives(sels[i]!)); if ((i & 255) === 255) yield; }
  // Build: tuple signature → (key text → rows), rows ascending.
  const builds = new Map<string, TupleBuild>();
  const wild: number[] = [];
  const fieldsBuf: number[] = [];
  for (let r = 0; r < rs.length; r++) {
    const row = rs[r]!;
    if ((r & 255) === 255) yield;
    const alts = altsOf[row.sel]!.slice();
    let forced = -1;
    if (row.key) { forced = KEY_FIELD[row.key.field]; alts[forced] = [[row.key.value | 0, row.key.mask | 0]]; }
    // Keep the fields with values while the cross product stays small (a large set stays whole).
    const present = [];
    for (let f = 0; f < NK; f++) if (alts[f]) present.push(f);
    present.sort((x, y) => (x === forced ? -1 : y === forced ? 1 : alts[y]!.length - alts[x]!.length));
    fieldsBuf.length = 0;
    let product = 1, limit = CROSS_LIMIT;
    for (const f of present) {
      const n = alts[f]!.length;
      if (fieldsBuf.length === 0) limit = Math.max(CROSS_LIMIT, n);
      if (product * n <= limit) { fieldsBuf.push(f); product *= n; }
    }
    if (fieldsBuf.length === 0 || small) { wild.push(r); continue; }
    const fields = [...fieldsBuf].sort((x, y) => x - y);
    const pick: Alt[] = new Array(fields.length);
    const emit = (i: number): void => {
      if (i === fields.length) {
        const sig = fields.map((f, j) => `${f}:${pick[j]![1]}`).join(',');
        let b = builds.get(sig);
        if (!b) {
          b = { fields, masks: pick.map((x) => x[1]), entries: new Map(), minRow: r,
            protos: fields.includes(K_PROTO) ? new Set() : null, kinds: fields.includes(K_KIND) ? new Set() : null };
          builds.set(sig, b);
        }
        fields.forEach((f, j) => { if (f === K_PROTO) b!.protos!.add(pick[j]![0]); else if (f === K_KIND) b!.kinds!.add(pick[j]![0]); });
        const vals = pick.map((x) => x[0] & x[1]);
        const key = vals.join(',');
        let e = b.entries.get(key);
        if (!e) { e = { vals, rows: [] }; b.entries.set(key, e); }
        if (e.rows[e.rows.length - 1] !== r) e.rows.push(r);
        return;
      }
      for (const x of alts[fields[i]!]!) { pick[i] = x; emit(i + 1); }
    };
    emit(0);
  }
  return { builds, wild };
}

/**
 * A Matcher's compiled tables as a read-only image over SharedArrayBuffers (src/select/shared.ts):
 * compiled once, run by every worker thread through Matcher.fromImage.
 */
export interface MatcherImage {
  count: number; t: SelectorTableImage; rowSel: Int32Array; rowGuard: Uint8Array;
  tK: Int32Array; tCap: Int32Array; tSeed: Int32Array; tMin: Int32Array; tFOff: Int32Array; tSOff: Int32Array; tKOff: Int32Array;
  tF: Int32Array; tM: Int32Array; sStart: Int32Array; sLen: Int32Array; sKeys: Int32Array;
  pOff: Int32Array; pLen: Int32Array; pruned: Int32Array; pool: Int32Array;
  wild: BitvectorImage | null; wildRows: Int32Array; allWild: boolean;
}

export class Matcher {
  /** Number of rows (first() returns a row index). */
  readonly count: number;
  private readonly t: SelectorTable;
  private readonly rowSel: Int32Array;
  /** Per row: G_* conditions its map key needs (0 for plain rows). */
  private readonly rowGuard: Uint8Array;
  // The tuples in search order (by first row), flattened into typed arrays: per tuple its field
  // count, mask of its slot count, hash seed, first row, and offsets into the shared field, slot and
  // key arrays. Per slot: offset of its rows in `pool` (-1: empty) and their count.
  private readonly tK: Int32Array;
  private readonly tCap: Int32Array;
  private readonly tSeed: Int32Array;
  private readonly tMin: Int32Array;
  private readonly tFOff: Int32Array;
  private readonly tSOff: Int32Array;
  private readonly tKOff: Int32Array;
  private readonly tF: Int32Array;
  private readonly tM: Int32Array;
  private readonly sStart: Int32Array;
  private readonly sLen: Int32Array;
  private readonly sKeys: Int32Array;
  /**
   * Tuple pruning (Srinivasan et al.): per (protocol, kind) of the packet, the tuples that can hold
   * a key with that protocol and kind, in search order: an ESP packet skips every tuple keyed on
   * TCP/UDP, DHCP or IKE. Index proto * 8 + kind into offsets/lengths of `pruned`.
   */
  private readonly pOff: Int32Array;
  private readonly pLen: Int32Array;
  private readonly pruned: Int32Array;
  private readonly pool: Int32Array;
  /** Rows with no indexable field, searched by a bit-vector classifier over them alone. */
  private readonly wild: BitvectorMatcher | null = null;
  private readonly wildRows: Int32Array = new Int32Array(0);
  /** The packet's key, read once per packet. */
  private readonly pv = new Int32Array(NK);
  private readonly scratch = new Int32Array(NK);
  /** Every row went to the wildcard classifier (a small rule set): first() is its first(). */
  private readonly allWild: boolean;
  /** Diagnostics: rows tested in full by the last first() (benchmarks). */
  lastTested = 0;

  /** `tuples: 'always'` builds the tuple index even for a small rule set (tests). */
  constructor(sels: NormSelector[], rows?: MatchRow[], opts: { tuples?: 'auto' | 'always'; filed?: FiledRows } = {}) {
    this.t = new SelectorTable(sels);
    const rs: MatchRow[] = rows ?? sels.map((_, i) => ({ sel: i }));
    this.count = rs.length;
    const small = opts.tuples !== 'always' && rs.length <= SMALL_RULE_SET && rs.every((r) => !r.key);
    this.rowSel = Int32Array.from(rs, (r) => r.sel);
    this.rowGuard = Uint8Array.from(rs, (r) => (r.key ? KEY_GUARD[r.key.field] : 0));
    const { builds, wild } = opts.filed ?? runSteps(fileRows(sels, rs, small));
    if (wild.length > 0) {
      this.wild = new BitvectorMatcher(wild.map((r) => sels[rs[r]!.sel]!), { table: this.t, ids: Int32Array.from(wild, (r) => rs[r]!.sel) });
      this.wildRows = Int32Array.from(wild);
    }
    this.allWild = wild.length === rs.length && rs.length > 0;
    const l = layOutTuples(builds.values(), wild);
    this.tK = l.tK; this.tCap = l.tCap; this.tSeed = l.tSeed; this.tMin = l.tMin;
    this.tFOff = l.tFOff; this.tSOff = l.tSOff; this.tKOff = l.tKOff; this.tF = l.tF; this.tM = l.tM;
    this.sStart = l.sStart; this.sLen = l.sLen; this.sKeys = l.sKeys;
    this.pOff = l.pOff; this.pLen = l.pLen; this.pruned = l.pruned; this.pool = l.pool;
  }

  /** The same classifier, its per-rule compile run in slices with the event loop turning between them. */
  static async sliced(sels: NormSelector[], rows?: MatchRow[], opts: { tuples?: 'auto' | 'always' } = {}): Promise<Matcher> {
    const rs: MatchRow[] = rows ?? sels.map((_, i) => ({ sel: i }));
    const small = opts.tuples !== 'always' && rs.length <= SMALL_RULE_SET && rs.every((r) => !r.key);
    return new Matcher(sels, rs, { ...opts, filed: await runStepsSliced(fileRows(sels, rs, small)) });
  }

  /** Resolves interface globs against this table (and again whenever it refreshes). */
  bind(ifaces: InterfaceNames): void {
    this.t.bind(ifaces); // the wildcard rules' bit-vector classifier shares this table
  }

  /** The compiled tables as a read-only image other threads can run (arrays copied into SharedArrayBuffers once). */
  image(): MatcherImage {
    const a = shareArray;
    return {
      count: this.count, t: this.t.image(), rowSel: a(this.rowSel), rowGuard: a(this.rowGuard),
      tK: a(this.tK), tCap: a(this.tCap), tSeed: a(this.tSeed), tMin: a(this.tMin), tFOff: a(this.tFOff), tSOff: a(this.tSOff), tKOff: a(this.tKOff),
      tF: a(this.tF), tM: a(this.tM), sStart: a(this.sStart), sLen: a(this.sLen), sKeys: a(this.sKeys),
      pOff: a(this.pOff), pLen: a(this.pLen), pruned: a(this.pruned), pool: a(this.pool),
      wild: this.wild ? this.wild.image() : null, wildRows: a(this.wildRows), allWild: this.allWild,
    };
  }

  /**
   * A classifier over an image's arrays, nothing copied; its interface caches and packet key are its
   * own. Built through the constructor (no rows) and then given the image's fields, so it has the
   * shape of every other Matcher of this thread (one inline-cache shape in first()).
   */
  static fromImage(im: MatcherImage): Matcher {
    const t = SelectorTable.fromImage(im.t);
    return Object.assign(new Matcher([], []), { ...im, t, wild: im.wild ? BitvectorMatcher.fromImage(im.wild, t) : null });
  }

  /** Number of tuples (hash tables) a packet may probe; diagnostics and benchmarks. */
  get tupleCount(): number { return this.tK.length; }

  /** Index of the first row that matches, or -1. */
  first(ctx: MatchInput): number {
    if (this.allWild) return this.wild!.first(ctx); // rows are the wildcard rows, in order
    const info = ctx.info, pv = this.pv;
    pv[K_SRC] = info.src; pv[K_DST] = info.dst; pv[K_PROTO] = info.proto & 255;
    pv[K_SPORT] = info.sport; pv[K_DPORT] = info.dport; pv[K_SPI] = info.espSpi; pv[K_MARK] = ctx.mark;
    const kind = info.kind;
    pv[K_KIND] = kind;
    pv[K_APP] = kind === Kind.DHCP ? info.dhcpMessageType & 255 : kind === Kind.IKE ? info.ikeExchange & 255 : -1;
    pv[K_HOOK] = ctx.hook;
    const proto = info.proto;
    const guards = (info.ipVersion === 4 ? G_V4 : 0) | ((proto === 6 || proto === 17) && !info.isLaterFragment ? G_PORTS : 0) |
      (kind === Kind.ESP || kind === Kind.ESP_IN_UDP ? G_ESP : 0);
    const rowGuard = this.rowGuard;
    const t = this.t;
    let inBits = EMPTY_BITS, outBits = EMPTY_BITS, ifDone = !t.usesIf;
    const n = t.count, key = this.scratch, pool = this.pool, rowSel = this.rowSel;
    const tK = this.tK, tMin = this.tMin, tF = this.tF, tM = this.tM, sStart = this.sStart, sKeys = this.sKeys;
    let best = this.count, tested = 0;
    const pi = ((info.proto & 255) << 3) | (kind & 7), pruned = this.pruned;
    for (let q = this.pOff[pi]!, qe = q + this.pLen[pi]!; q < qe; q++) {
      const ti = pruned[q]!;
      if (tMin[ti]! >= best) break;
      const k = tK[ti]!;
      if (k === 0) {
        const j = this.wild!.first(ctx);
        if (j >= 0 && this.wildRows[j]! < best) best = this.wildRows[j]!;
        continue;
      }
      const fo = this.tFOff[ti]!;
      let h = this.tSeed[ti]!;
      for (let i = 0; i < k; i++) {
        const v = pv[tF[fo + i]!]! & tM[fo + i]!;
        key[i] = v;
        h = Math.imul(h ^ v, 0x9e3779b1); h ^= h >>> 15;
      }
      const cm = this.tCap[ti]!, so = this.tSOff[ti]!, ko = this.tKOff[ti]!;
      let slot = h & cm;
      for (;;) {
        const s = sStart[so + slot]!;
        if (s === -1) break;
        const kb = ko + slot * k;
        let i = 0;
        while (i < k && sKeys[kb + i] === key[i]) i++;
        if (i === k) {
          const e = s + this.sLen[so + slot]!;
          for (let j = s; j < e; j++) {
            const r = pool[j]!;
            if (r >= best) break;
            if ((rowGuard[r]! & ~guards) !== 0) continue;
            tested++;
            if (!ifDone) { inBits = t.ifBits(ctx.indev); outBits = t.ifBits(ctx.outdev); ifDone = true; }
            const sel = rowSel[r]!;
            if (t.test(sel, ctx, inBits, outBits) && t.test(n + sel, ctx, inBits, outBits)) { best = r; break; }
          }
          break;
        }
        slot = (slot + 1) & cm;
      }
    }
    this.lastTested = tested;
    return best === this.count ? -1 : best;
  }

  /** Whether row r's selector matches (the element of a map row is not tested: the index decides it). */
  matches(r: number, ctx: MatchInput): boolean { return this.t.matches(this.rowSel[r]!, ctx); }
}
