/**
 * The selector language shared by `steer:` rules and `policy:` policies: its YAML schema and its
 * normalized form (plain numbers and ranges), from which src/select/match.ts compiles the per-packet
 * matcher, src/select/shadow.ts finds shadowed rules and src/select/iptmatch.ts writes iptables
 * matches for capture rules (src/steer/rules.ts).
 *
 * Every field is optional; all given fields must match (AND); a list means any of its values (OR).
 * Fields under `not:` are negated one by one, like iptables `!` (`not: {dport: 22, src: 10.0.0.0/8}`
 * means "dport is not 22 AND src is not in 10.0.0.0/8").
 */
import { z } from 'zod';
import { AddrRanges, compileAddresses, isAddressSpec, type AddressSets } from './addr';
import { normGlob } from './glob';
import { namedSets, numberOrText, setSchema } from './sets';

export const HOOKS = ['prerouting', 'input', 'forward', 'output', 'postrouting'] as const;

export const PROTOCOLS: Record<string, number> = {
  icmp: 1, igmp: 2, tcp: 6, udp: 17, gre: 47, esp: 50, ah: 51, icmpv6: 58, sctp: 132,
};

export const ICMP_TYPES: Record<string, number> = {
  'echo-reply': 0, 'destination-unreachable': 3, 'source-quench': 4, redirect: 5, 'echo-request': 8,
  'router-advertisement': 9, 'router-solicitation': 10, 'time-exceeded': 11, 'parameter-problem': 12,
  'timestamp-request': 13, 'timestamp-reply': 14,
};

/** RFC 2132 9.6 (1-8) and RFC 3203 / 4388 (9-13). */
export const DHCP_TYPES: Record<string, number> = {
  discover: 1, offer: 2, request: 3, decline: 4, ack: 5, nak: 6, release: 7, inform: 8,
  forcerenew: 9, leasequery: 10, leaseunassigned: 11, leaseunknown: 12, leaseactive: 13,
};

/** RFC 7296 3.1 (IKEv2) and RFC 2408 / 2409 (IKEv1 exchange types). */
export const IKE_EXCHANGES: Record<string, number> = {
  main_mode: 2, aggressive_mode: 4, informational_v1: 5, quick_mode: 32, new_group_mode: 33,
  ike_sa_init: 34, ike_auth: 35, create_child_sa: 36, informational: 37,
};

export const KINDS: Record<string, number> = {
  other: 0, esp: 1, 'esp-in-udp': 2, ike: 3, 'nat-keepalive': 4, dhcp: 5,
};

const many = <T extends z.ZodType>(s: T) => z.union([s, z.array(s).min(1)]);
const named = (table: Record<string, number>, max: number, what: string) =>
  z.union([z.number().int().min(0).max(max), z.string().refine((s) => s in table, `${what}: one of ${Object.keys(table).join(', ')} or a number`)]);

const RANGE_RE = /^(0x[0-9a-fA-F]+|\d+)\s*[:-]\s*(0x[0-9a-fA-F]+|\d+)$/;
const NUM_RE = /^(0x[0-9a-fA-F]+|\d+)$/;
/** A number, or a string `N`, `LO:HI` / `LO-HI` (decimal or 0x hex), within [0, max]. */
const range = (max: number, what: string) => z.union([
  z.number().int().min(0).max(max),
  z.string().refine((s) => {
    const m = RANGE_RE.exec(s.trim()) ?? (NUM_RE.test(s.trim()) ? [s, s.trim(), s.trim()] : null);
    if (!m) return false;
    const lo = Number(m[1]), hi = Number(m[2]);
    return lo <= hi && hi <= max;
  }, `${what}: a number or a range like 1024:65535 (at most ${max})`),
]);

const ifname = z.string().min(1).max(15).regex(/^[A-Za-z0-9_.:@*?+-]+$/, 'an interface name or glob (eth0, ppp*, ipsec?, eth+)');
const address = z.string().refine(isAddressSpec, 'an IPv4 address, prefix (10.0.0.0/8), any, or @set_name');
const markSpec = z.union([z.number().int().min(0).max(0xffffffff),
  z.string().regex(/^(0x[0-9a-fA-F]{1,8}|\d+)(\/(0x[0-9a-fA-F]{1,8}|\d+))?$/, 'a mark like 0x10 or 0x10/0xff')]);

const setRef = z.string().regex(/^@[A-Za-z0-9_.-]+$/);
const portOrSet = (what: string) => z.union([range(65535, what), setRef]);

const selectorFields = {
  hook: many(z.enum(HOOKS)).optional().describe('netfilter hook the packet was queued from'),
  in: many(ifname).optional().describe('input interface: name or glob, or @interface_set'),
  out: many(ifname).optional().describe('output interface: name or glob, or @interface_set'),
  src: many(address).optional().describe('source prefix(es) or @address_set'),
  dst: many(address).optional().describe('destination prefix(es) or @address_set'),
  proto: many(named(PROTOCOLS, 255, 'proto')).optional().describe('IP protocol (IPv6: upper-layer header)'),
  sport: many(portOrSet('sport')).optional().describe('TCP/UDP source port or range, or @port_set'),
  dport: many(portOrSet('dport')).optional().describe('TCP/UDP destination port or range, or @port_set'),
  icmp_type: many(named(ICMP_TYPES, 255, 'icmp_type')).optional().describe('ICMP / ICMPv6 type'),
  dhcp_type: many(named(DHCP_TYPES, 255, 'dhcp_type')).optional().describe('DHCP message type (option 53)'),
  ike_exchange: many(named(IKE_EXCHANGES, 255, 'ike_exchange')).optional().describe('IKE exchange type'),
  esp_spi: many(range(0xffffffff, 'esp_spi')).optional().describe('ESP SPI or range (ESP and ESP-in-UDP)'),
  kind: many(z.enum(Object.keys(KINDS) as [string, ...string[]])).optional().describe('what the packet layer recognized'),
  mark: markSpec.optional().describe('packet mark under a mask: (mark & mask) == value'),
  length: many(range(65535, 'length')).optional().describe('IP total length in bytes, or range'),
  queue: many(range(65535, 'queue')).optional().describe('NFQUEUE number (or TUN source id)'),
  ip_version: z.union([z.literal(4), z.literal(6)]).optional(),
};

export const selectorSchema = z.object({
  ...selectorFields,
  not: z.object(selectorFields).strict().optional().describe('fields negated one by one (iptables `!`)'),
}).strict();

export type SelectorConfig = z.infer<typeof selectorSchema>;
type Fields = Omit<SelectorConfig, 'not'>;

/** Address-set map as it appears in config (`address_sets: {vpn: [10.0.2.0/24]}` or `{vpn: {file: vpn.txt}}`). */
export const addressSetsSchema = namedSets(setSchema(address));
const interfaceName = z.string().min(1).max(15).regex(/^[A-Za-z0-9_.:*?+-]+$/, 'an interface name or glob (eth0, ppp*, ipsec?, eth+)');

/** The named sets a section's selectors may refer to (steer and policy both spread this). */
export const selectorSetsShape = {
  address_sets: addressSetsSchema.default({}).describe('named prefix lists (inline or {file}), referred to as @name in src/dst'),
  port_sets: namedSets(setSchema(range(65535, 'port'), numberOrText)).default({}).describe('named port lists/ranges (inline or {file}), @name in sport/dport'),
  interface_sets: namedSets(setSchema(interfaceName)).default({}).describe('named interface names/globs (inline or {file}), @name in in/out'),
};

/** The named sets normalizeSelector resolves `@name` against (a steer or policy section). */
export interface SelectorSets {
  address_sets?: AddressSets;
  port_sets?: Record<string, (number | string)[]>;
  interface_sets?: Record<string, string[]>;
}

// ---------------------------------------------------------------------------------------------------
// Normalized form

export type Range = [number, number];

/** The fields of one side (positive, or under `not:`) as plain numbers. */
export interface NormFields {
  hook?: number;              // bit mask of hook numbers (1 << HOOKS.indexOf(h))
  in?: string[];              // globs
  out?: string[];
  src?: AddrRanges;
  dst?: AddrRanges;
  srcSpec?: string[];         // the expanded prefixes, for iptables and messages
  dstSpec?: string[];
  proto?: number[];
  sport?: Range[];
  dport?: Range[];
  icmp_type?: number[];
  dhcp_type?: number[];
  ike_exchange?: number[];
  esp_spi?: Range[];
  kind?: number[];
  mark?: { value: number; mask: number };
  length?: Range[];
  queue?: Range[];
  ip_version?: number;
}

/** A selector matches when every field of `pos` matches and no field of `not` does. */
export interface NormSelector { pos: NormFields; not: NormFields }

const arr = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);

export function parseRange(x: number | string): Range {
  if (typeof x === 'number') return [x, x];
  const t = x.trim();
  const m = RANGE_RE.exec(t);
  if (m) return [Number(m[1]), Number(m[2])];
  return [Number(t), Number(t)];
}

export function parseMark(x: number | string): { value: number; mask: number } {
  if (typeof x === 'number') return { value: x >>> 0, mask: 0xffffffff };
  const [v, m] = x.split('/');
  const mask = m === undefined ? 0xffffffff : Number(m) >>> 0;
  return { value: (Number(v) & mask) >>> 0, mask };
}

const byName = (table: Record<string, number>) => (x: number | string): number => (typeof x === 'number' ? x : table[x]!);

/** `@name` elements replaced by the named set's (one level: port and interface sets hold no references). */
function fromSets<T>(xs: (T | string)[], sets: Record<string, T[]> | undefined, what: string): T[] {
  const out: T[] = [];
  for (const x of xs) {
    if (typeof x === 'string' && x.startsWith('@')) {
      const body = sets?.[x.slice(1)];
      if (body === undefined) throw new Error(`unknown ${what} ${x}`);
      for (const y of body) out.push(y);
    } else {
      out.push(x as T);
    }
  }
  return out;
}

/**
 * Compiled address lists, shared: a rule set where 1,000 rules say `src: '@clients'` compiles the
 * 100k-element set once (per section, per normalization pass).
 */
const addrCache = new WeakMap<object, Map<string, { ranges: AddrRanges; spec: string[] }>>();
function addresses(specs: string[], sets: AddressSets): { ranges: AddrRanges; spec: string[] } {
  const key = specs.join(' ');
  let cache = addrCache.get(sets);
  if (!cache) { cache = new Map(); addrCache.set(sets, cache); }
  let hit = cache.get(key);
  if (!hit) { hit = { ranges: compileAddresses(specs, sets), spec: expand(specs, sets) }; cache.set(key, hit); }
  return hit;
}

function normFields(f: Fields, sets: SelectorSets): NormFields {
  const out: NormFields = {};
  const aSets = sets.address_sets ?? {};
  if (f.hook !== undefined) out.hook = arr(f.hook).reduce((m, h) => m | (1 << HOOKS.indexOf(h)), 0);
  if (f.in !== undefined) out.in = fromSets(arr(f.in), sets.interface_sets, 'interface set').map(normGlob);
  if (f.out !== undefined) out.out = fromSets(arr(f.out), sets.interface_sets, 'interface set').map(normGlob);
  if (f.src !== undefined) { const a = addresses(arr(f.src), aSets); out.src = a.ranges; out.srcSpec = a.spec; }
  if (f.dst !== undefined) { const a = addresses(arr(f.dst), aSets); out.dst = a.ranges; out.dstSpec = a.spec; }
  if (f.proto !== undefined) out.proto = arr(f.proto).map(byName(PROTOCOLS));
  if (f.sport !== undefined) out.sport = fromSets(arr(f.sport), sets.port_sets, 'port set').map(parseRange);
  if (f.dport !== undefined) out.dport = fromSets(arr(f.dport), sets.port_sets, 'port set').map(parseRange);
  if (f.icmp_type !== undefined) out.icmp_type = arr(f.icmp_type).map(byName(ICMP_TYPES));
  if (f.dhcp_type !== undefined) out.dhcp_type = arr(f.dhcp_type).map(byName(DHCP_TYPES));
  if (f.ike_exchange !== undefined) out.ike_exchange = arr(f.ike_exchange).map(byName(IKE_EXCHANGES));
  if (f.esp_spi !== undefined) out.esp_spi = arr(f.esp_spi).map(parseRange);
  if (f.kind !== undefined) out.kind = arr(f.kind).map(byName(KINDS));
  if (f.mark !== undefined) out.mark = parseMark(f.mark);
  if (f.length !== undefined) out.length = arr(f.length).map(parseRange);
  if (f.queue !== undefined) out.queue = arr(f.queue).map(parseRange);
  if (f.ip_version !== undefined) out.ip_version = f.ip_version;
  return out;
}

function expand(specs: string[], sets: AddressSets): string[] {
  // compileAddresses already validated the names; this keeps the prefixes for iptables output.
  const out: string[] = [];
  for (const s of specs) {
    if (s.startsWith('@')) { for (const x of expand(sets[s.slice(1)]!, sets)) out.push(x); }
    else out.push(s === 'any' ? '0.0.0.0/0' : s);
  }
  return out;
}

/** Normalizes one validated selector; throws (with a message naming the set) on bad set names. */
export function normalizeSelector(sel: SelectorConfig | undefined, sets: SelectorSets = {}): NormSelector {
  if (!sel) return { pos: {}, not: {} };
  const { not, ...pos } = sel;
  return { pos: normFields(pos, sets), not: not ? normFields(not, sets) : {} };
}
