/**
 * Config → numbers and bytes, once per (re)load: scope matchers (interface globs, prefixes) and every
 * configured option value already encoded, so answering an INFORM copies bytes and never formats.
 */
import { parseIpv4 } from '../packet/bytes';
import { encodeClasslessRoutes, type ClasslessRoute } from '../packet/dhcp-options';
import { fromHex } from '../packet/bytes';
import { globToRegExp } from '../select/glob';
import type { RawOptionConfig, ScopeConfig } from './config';

export interface Prefix { net: number; mask: number }

export function maskOf(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

export function parsePrefix(s: string): Prefix {
  const [a, l] = s.split('/');
  const len = l === undefined ? 32 : Number(l);
  const mask = maskOf(len);
  return { net: (parseIpv4(a!) & mask) >>> 0, mask };
}

export function inPrefixes(list: readonly Prefix[], addr: number): boolean {
  for (let i = 0; i < list.length; i++) if (((addr & list[i]!.mask) >>> 0) === list[i]!.net) return true;
  return false;
}

export function ip(s: string): number {
  const a = parseIpv4(s);
  if (a < 0) throw new Error(`not an IPv4 address: ${s}`);
  return a;
}

export interface CompiledScope {
  index: number;
  name: string;
  ifGlobs: RegExp[] | null;
  giaddr: Prefix[] | null;
  ciaddr: Prefix[] | null;
  /** 0: the arrival interface's address. */
  serverId: number;
  /** Encoded value per option code (null: not configured). */
  values: (Uint8Array | null)[];
  /** Configured codes in the order sent when the client has no option 55. */
  order: number[];
  routersWithClassless: boolean;
  /** Bytes all configured options take on the wire (with RFC 3396 split headers). */
  encodedLength: number;
}

function addrs(list: readonly string[]): Uint8Array {
  const b = new Uint8Array(4 * list.length);
  list.forEach((a, i) => { const n = ip(a); b[4 * i] = n >>> 24; b[4 * i + 1] = (n >>> 16) & 255; b[4 * i + 2] = (n >>> 8) & 255; b[4 * i + 3] = n & 255; });
  return b;
}

export function encodeRawOption(o: RawOptionConfig): Uint8Array {
  if (o.ipv4 !== undefined) return addrs(Array.isArray(o.ipv4) ? o.ipv4 : [o.ipv4]);
  if (o.text !== undefined) return new TextEncoder().encode(o.text);
  if (o.u8 !== undefined) return Uint8Array.of(o.u8);
  if (o.bool !== undefined) return Uint8Array.of(o.bool ? 1 : 0);
  if (o.u16 !== undefined) return Uint8Array.of(o.u16 >>> 8, o.u16 & 255);
  if (o.u32 !== undefined || o.i32 !== undefined) {
    const v = (o.u32 ?? o.i32!) >>> 0;
    return Uint8Array.of(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
  }
  const b = fromHex(o.hex ?? '');
  if (!b || b.length === 0) throw new Error(`option ${o.code}: bad hex`);
  return b;
}

export function scopeRoutes(s: ScopeConfig): ClasslessRoute[] {
  const routes: ClasslessRoute[] = s.classless_routes.map((r) => {
    const [d, l] = r.destination.split('/');
    const len = l === undefined ? 32 : Number(l);
    return { destination: (ip(d!) & maskOf(len)) >>> 0, prefixLength: len, router: ip(r.router) };
  });
  if (s.classless_default_route && !routes.some((r) => r.prefixLength === 0)) {
    routes.push({ destination: 0, prefixLength: 0, router: ip(s.routers[0]!) });
  }
  return routes;
}

/** On-wire bytes of one option value (RFC 3396: one code/length header per 255 bytes). */
export function wireLength(n: number): number {
  return Math.max(1, Math.ceil(n / 255)) * 2 + n;
}

export function compileScope(s: ScopeConfig, index: number): CompiledScope {
  const values: (Uint8Array | null)[] = new Array(256).fill(null);
  const order: number[] = [];
  const put = (code: number, v: Uint8Array): void => { values[code] = v; order.push(code); };
  if (s.subnet_mask) put(1, addrs([s.subnet_mask]));
  if (s.routers.length) put(3, addrs(s.routers));
  if (s.dns_servers.length) put(6, addrs(s.dns_servers));
  if (s.domain_name) put(15, new TextEncoder().encode(s.domain_name));
  for (const o of s.options) put(o.code, encodeRawOption(o));
  const routes = scopeRoutes(s);
  if (routes.length) {
    const v = encodeClasslessRoutes(routes);
    put(121, v);
    if (s.ms_classless_routes) put(249, v);
  }
  let encodedLength = 0;
  for (const c of order) encodedLength += wireLength(values[c]!.length);
  return {
    index,
    name: s.name ?? `scope${index}`,
    ifGlobs: s.match.interfaces ? s.match.interfaces.map(globToRegExp) : null,
    giaddr: s.match.giaddr ? s.match.giaddr.map(parsePrefix) : null,
    ciaddr: s.match.ciaddr ? s.match.ciaddr.map(parsePrefix) : null,
    serverId: s.server_id ? ip(s.server_id) : 0,
    values, order, routersWithClassless: s.routers_with_classless, encodedLength,
  };
}

/** 32-bit FNV-1a step over one byte (client keys for the rate limiter; no strings). */
export function fnv(h: number, byte: number): number {
  return Math.imul(h ^ byte, 0x01000193) >>> 0;
}
export const FNV_INIT = 0x811c9dc5;
