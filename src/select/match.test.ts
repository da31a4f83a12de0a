/**
 * Differential test of the tuple-space classifier (match.ts) against the two references: a plain
 * linear scan (every rule in order, SelectorTable.matches) and the bit-vector classifier the stages
 * used before (bitvector.ts). Random rule sets over every selector field (lists, ranges, `not:`,
 * address sets, marks, hooks, interface globs, kinds) and random packets drawn mostly from the
 * rules' own values, so that many match and many miss by one field. Any disagreement fails with
 * the seed, the rule set and the packet.
 *   SLUICE_DIFF_SETS=20000 node --test dist/src/select/match.test.js     (longer run)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Classified } from '../packet/classify';
import { BitvectorMatcher } from './bitvector';
import { Matcher, rangeToCidrs, type MatchRow } from './match';
import { SelectorTable, type MatchInput } from './rows';
import { normalizeSelector, type NormSelector, type SelectorConfig } from './selector';
import { prefixRange } from './addr';

const SETS = Number(process.env.SLUICE_DIFF_SETS ?? 400);
const PACKETS = Number(process.env.SLUICE_DIFF_PACKETS ?? 1500);

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s % n;
  };
}

const NAMES: Record<number, string> = { 1: 'lo', 2: 'eth0', 3: 'eth1', 4: 'ppp0', 5: 'ppp1', 6: 'wlan0', 7: 'ipsec0' };
const ifaces = { nameOf: (i: number) => NAMES[i], onRefresh: () => {} };

const ip = (a: number): string => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;

function generate(seed: number) {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[r(xs.length)]!;
  const some = <T>(xs: readonly T[]): T | T[] => (r(3) === 0 ? [...new Set(Array.from({ length: 1 + r(3) }, () => pick(xs)))] : pick(xs));
  // A small address universe so that prefixes nest and collide.
  const base = [0x0a000000, 0x0a010000, 0x0a010100, 0xc0000200, 0xcb007100, 0xc6336400];
  const prefixes: string[] = [];
  for (const b of base) {
    for (const len of [8, 16, 23, 24, 25, 30, 32]) prefixes.push(`${ip((b + r(256)) >>> 0)}/${len}`);
  }
  prefixes.push('any', '0.0.0.0/1', '128.0.0.0/1');
  const sets: Record<string, string[]> = {
    small: [pick(prefixes), pick(prefixes)],
    big: Array.from({ length: 40 + r(200) }, () => `${ip((0x0a000000 + r(0x20000)) >>> 0)}/${pick([24, 28, 32])}`),
    nested: ['@small', pick(prefixes)],
  };
  const addrs = [...prefixes, '@small', '@big', '@nested'];
  const ports = [22, 53, 67, 68, 80, 443, 500, 4500, '1000:1010', '1024:65535', '0:100', 8080];
  const fields = (): SelectorConfig => {
    const s: Record<string, unknown> = {};
    const n = 1 + r(4);
    for (let i = 0; i < n; i++) {
      switch (r(17)) {
        case 0: s.hook = some(['prerouting', 'input', 'forward', 'output', 'postrouting'] as const); break;
        case 1: s.in = some(['eth*', 'ppp0', 'ppp*', 'wlan?', 'eth+', 'ipsec0']); break;
        case 2: s.out = some(['eth*', 'ppp1', 'ipsec?']); break;
        case 3: case 4: s.src = some(addrs); break;
        case 5: case 6: s.dst = some(addrs); break;
        case 7: s.proto = some(['tcp', 'udp', 'icmp', 'esp', 47, 'igmp']); break;
        case 8: s.sport = some(ports); break;
        case 9: s.dport = some(ports); break;
        case 10: s.icmp_type = some(['echo-request', 'echo-reply', 3, 11]); break;
        case 11: s.dhcp_type = some(['discover', 'inform', 'request', 2, 4]); break;
        case 12: s.ike_exchange = some(['ike_sa_init', 'ike_auth', 'informational', 2, 5]); break;
        case 13: s.esp_spi = some([0x1000, 0x1001, '0x2000:0x2003', '0xd0000000:0xdfffffff', 4]); break;
        case 14: s.kind = some(['other', 'esp', 'esp-in-udp', 'ike', 'dhcp', 'nat-keepalive']); break;
        case 15: s.mark = pick(['0x10/0xff', '0x100/0xf00', 16, '0x0/0x1', '0x80000000/0x80000000']); break;
        default: if (r(2)) s.length = some(['0:100', '60:1500', 84, '1400:65535']); else if (r(2)) s.queue = some([0, 1, '2:5']); else s.ip_version = pick([4, 6]); break;
      }
    }
    return s as SelectorConfig;
  };
  const nRules = 1 + r(r(4) === 0 ? 400 : 60);
  const sels: NormSelector[] = [];
  for (let i = 0; i < nRules; i++) {
    const pos = r(12) === 0 ? {} : fields();
    const sel: SelectorConfig = r(4) === 0 ? { ...pos, not: fields() as SelectorConfig['not'] } : pos;
    sels.push(normalizeSelector(sel, { address_sets: sets }));
  }
  return { sels, r, pick, sets, prefixes };
}

/** A packet with fields drawn from the rules' universe (and some outside it). */
function packet(r: (n: number) => number, sels: NormSelector[]): MatchInput {
  const info = new Classified();
  const from = sels[r(sels.length)]!.pos;
  const addrIn = (x: NormSelector['pos']['src']): number => {
    if (x && x.lo.length > 0 && r(4) !== 0) {
      const i = r(x.lo.length), lo = x.lo[i]!, hi = x.hi[i]!, k = r(5);
      if (k === 0) return lo;
      if (k === 1) return hi;
      if (k === 2) return lo > 0 ? lo - 1 : hi + 1;
      return (lo + (hi > lo ? r(Math.min(hi - lo + 1, 0x7fffffff)) : 0)) >>> 0;
    }
    return [0x0a000001, 0x0a010105, 0xc0000201, 0xcb007101, (r(0x10000) * 0x10000 + r(0x10000)) >>> 0][r(5)]!;
  };
  info.ipVersion = r(10) === 0 ? 6 : 4;
  info.src = info.ipVersion === 4 ? addrIn(from.src) : 0;
  info.dst = info.ipVersion === 4 ? addrIn(from.dst) : 0;
  info.proto = from.proto && r(4) !== 0 ? from.proto[r(from.proto.length)]! : [6, 17, 1, 50, 47, 58][r(6)]!;
  /** A value of one of the ranges (often an end: off-by-one bugs live there), or one from outside. */
  const inRange = (x: [number, number][]): number => {
    const [lo, hi] = x[r(x.length)]!;
    const k = r(4);
    return k === 0 ? lo : k === 1 ? hi : k === 2 ? Math.min(hi + 1, 0xffffffff) : lo + r(Math.min(hi - lo + 1, 0x7fffffff));
  };
  const port = (x: [number, number][] | undefined): number => (x && r(4) !== 0 ? inRange(x) & 0xffff : [22, 53, 67, 68, 500, 4500, 1005, 40000][r(8)]!);
  info.sport = port(from.sport); info.dport = port(from.dport);
  info.isLaterFragment = r(20) === 0;
  info.kind = from.kind && r(3) !== 0 ? from.kind[r(from.kind.length)]! : r(6);
  info.espSpi = from.esp_spi && r(3) !== 0 ? inRange(from.esp_spi) : [0x1000, 0x2002, 0xd0000001, 0][r(4)]!;
  info.dhcpMessageType = from.dhcp_type && r(3) !== 0 ? from.dhcp_type[r(from.dhcp_type.length)]! : r(14);
  info.ikeExchange = from.ike_exchange && r(3) !== 0 ? from.ike_exchange[r(from.ike_exchange.length)]! : [34, 35, 37, 2, 5][r(5)]!;
  info.icmpType = r(5) === 0 ? -1 : [0, 3, 8, 11][r(4)]!;
  info.totalLength = [40, 84, 100, 576, 1500, 9000][r(6)]!;
  return {
    info, mark: from.mark && r(3) !== 0 ? from.mark.value : [0, 0x10, 0x110, 1, 0x80000000 | 0][r(5)]!,
    indev: r(9) - 1, outdev: r(9) - 1, hook: r(6) - 1, queue: r(7),
  };
}

function linear(t: SelectorTable, ctx: MatchInput): number {
  for (let i = 0; i < t.count; i++) if (t.matches(i, ctx)) return i;
  return -1;
}

const show = (ctx: MatchInput): string => JSON.stringify({ ...ctx.info, mark: ctx.mark, indev: ctx.indev, outdev: ctx.outdev, hook: ctx.hook, queue: ctx.queue });

test(`tuple-space classifier = linear scan = bit-vector classifier (${SETS} rule sets × ${PACKETS} packets)`, () => {
  let packets = 0, matched = 0;
  for (let seed = 1; seed <= SETS; seed++) {
    const { sels, r } = generate(seed);
    const m = new Matcher(sels, undefined, { tuples: seed % 2 ? "always" : "auto" }), bv = new BitvectorMatcher(sels), lin = new SelectorTable(sels);
    m.bind(ifaces); bv.bind(ifaces); lin.bind(ifaces);
    for (let i = 0; i < PACKETS; i++) {
      const ctx = packet(r, sels);
      const want = linear(lin, ctx);
      const got = m.first(ctx);
      if (got !== want || bv.first(ctx) !== want) {
        assert.fail(`seed ${seed}, ${sels.length} rules: tuple ${got}, bit-vector ${bv.first(ctx)}, linear ${want}\npacket ${show(ctx)}\nrule ${want}: ${JSON.stringify(sels[want])}\nrule ${got}: ${JSON.stringify(sels[got])}`);
      }
      packets++;
      if (want >= 0) matched++;
    }
  }
  // The generator must exercise both outcomes, or the comparison proves little.
  assert.ok(matched > packets * 0.2 && matched < packets * 0.95, `matched ${matched} of ${packets}`);
});

test('map rows: the element decides membership exactly, first match across rows and plain rules', () => {
  for (let seed = 1; seed <= Math.max(20, SETS / 10); seed++) {
    const { sels, r } = generate(seed * 7919);
    // Rows: the plain rules, then a map on src /32 and /24 elements (disjoint), then a dport map.
    const rows: MatchRow[] = sels.map((_, i) => ({ sel: i }));
    const base = sels.length;
    const mapSel = normalizeSelector(r(2) ? {} : { proto: 'udp' });
    const allSels = [...sels, mapSel];
    const elems: [number, number][] = [];
    for (let i = 0; i < 300; i++) elems.push([(0x0a000000 + i * 256 + (i % 3 === 0 ? 0 : 7)) >>> 0, i % 3 === 0 ? 24 : 32]);
    for (const [a, len] of elems) {
      const [lo] = prefixRange(`${ip(a)}/${len}`);
      rows.push({ sel: base, key: { field: 'src', value: lo, mask: len === 32 ? -1 : (0xffffffff << (32 - len)) | 0 } });
    }
    for (const p of [22, 53, 443]) rows.push({ sel: base, key: { field: 'dport', value: p, mask: -1 } });
    const m = new Matcher(allSels, rows);
    const lin = new SelectorTable(allSels);
    m.bind(ifaces); lin.bind(ifaces);
    const keyOk = (row: MatchRow, ctx: MatchInput): boolean => {
      if (!row.key) return true;
      const v = row.key.field === 'src' ? ctx.info.src : ctx.info.dport;
      if (row.key.field === 'src' && ctx.info.ipVersion !== 4) return false;
      if (row.key.field === 'dport' && ((ctx.info.proto !== 6 && ctx.info.proto !== 17) || ctx.info.isLaterFragment)) return false;
      return ((v & row.key.mask) | 0) === (row.key.value | 0);
    };
    for (let i = 0; i < 500; i++) {
      const ctx = packet(r, sels);
      if (r(2)) ctx.info.src = (0x0a000000 + r(300) * 256 + r(10)) >>> 0;
      let want = -1;
      for (let j = 0; j < rows.length; j++) if (lin.matches(rows[j]!.sel, ctx) && keyOk(rows[j]!, ctx)) { want = j; break; }
      // A later-fragment or non-TCP/UDP packet carries no dport; the matcher never files one there.
      assert.equal(m.first(ctx), want, `seed ${seed}: packet ${show(ctx)}`);
    }
  }
});

test('rangeToCidrs: the fewest aligned blocks, covering exactly', () => {
  assert.deepEqual(rangeToCidrs(0, 0xffffffff), [[0, 0]]);
  assert.deepEqual(rangeToCidrs(0x0a000000, 0x0a0000ff), [[0x0a000000, 0xffffff00 | 0]]);
  assert.deepEqual(rangeToCidrs(5, 5), [[5, -1]]);
  const r = rng(9);
  for (let i = 0; i < 2000; i++) {
    const lo = (r(0x10000) * 0x10000 + r(0x10000)) >>> 0, hi = Math.min(0xffffffff, lo + r(1 << r(31)));
    let next = lo;
    for (const [net, mask] of rangeToCidrs(lo, hi)) {
      assert.equal(net >>> 0, next, `gap at ${next}`);
      assert.equal((net & ~mask) >>> 0, 0, 'aligned');
      next = (net >>> 0) + ((~mask >>> 0) + 1);
    }
    assert.equal(next, hi + 1);
  }
});

test('Matcher.sliced: the same classifier, built with the event loop turning between slices', async () => {
  for (let seed = 1; seed <= 30; seed++) {
    const { sels, r } = generate(seed * 31);
    const a = new Matcher(sels, undefined, { tuples: 'always' });
    const b = await Matcher.sliced(sels, undefined, { tuples: 'always' });
    a.bind(ifaces); b.bind(ifaces);
    for (let i = 0; i < 300; i++) { const ctx = packet(r, sels); assert.equal(b.first(ctx), a.first(ctx)); }
  }
  // A large rule set: other callbacks run while it compiles.
  const many: NormSelector[] = [];
  for (let i = 0; i < 20000; i++) many.push(normalizeSelector({ proto: 'udp', dport: 1 + (i % 60000), src: `10.${(i >> 8) & 255}.${i & 255}.0/24` }));
  let turns = 0;
  const tick = setInterval(() => { turns++; }, 0);
  await Matcher.sliced(many);
  clearInterval(tick);
  assert.ok(turns > 0, 'the event loop ran during the build');
});

/** Every typed array in an image, with its path. */
function arraysOf(x: unknown, path = 'image', out: [string, ArrayBufferView][] = []): [string, ArrayBufferView][] {
  if (ArrayBuffer.isView(x)) out.push([path, x]);
  else if (Array.isArray(x)) x.forEach((v, i) => arraysOf(v, `${path}[${i}]`, out));
  else if (x !== null && typeof x === 'object' && !(x instanceof RegExp)) for (const [k, v] of Object.entries(x)) arraysOf(v, `${path}.${k}`, out);
  return out;
}

test('Matcher.fromImage: every table in a SharedArrayBuffer, not copied, and the same first match as the classifier it came from', () => {
  for (let seed = 1; seed <= 60; seed++) {
    const { sels, r } = generate(seed * 131);
    const m = new Matcher(sels, undefined, { tuples: seed % 2 ? 'always' : 'auto' });
    const im = m.image();
    const arrays = arraysOf(im);
    assert.ok(arrays.length > 20, `seed ${seed}: ${arrays.length} arrays`);
    for (const [path, a] of arrays) assert.ok(a.buffer instanceof SharedArrayBuffer, `seed ${seed}: ${path} is not shared`);
    // As postMessage would hand it over: the buffers stay shared, the plain parts are copied.
    const copy = structuredClone(im);
    const w = Matcher.fromImage(copy);
    assert.equal(w.image().rowSel.buffer, copy.rowSel.buffer, 'the new classifier runs on the image, no copy');
    assert.equal(w.image().t.present.buffer, copy.t.present.buffer);
    m.bind(ifaces); w.bind(ifaces);
    for (let i = 0; i < 400; i++) {
      const ctx = packet(r, sels);
      assert.equal(w.first(ctx), m.first(ctx), `seed ${seed}: packet ${show(ctx)}`);
    }
  }
});
