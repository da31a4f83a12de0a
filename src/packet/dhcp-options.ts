/**
 * Codecs for the DHCP options sluice reads or writes (dns-packet style: encode(obj, buf, offset)
 * returns bytes written, decode(bytes, offset, length), encodingLength(obj)):
 *   55  Parameter Request List (RFC 2132 9.8): a list of option codes.
 *   82  Relay Agent Information (RFC 3046): sub-options (1 Circuit ID, 2 Remote ID, 5 Link Selection
 *       (RFC 3527), 11 Server Identifier Override (RFC 5107), ...), each code/length/value.
 *   121 Classless Static Route (RFC 3442) and 249, Microsoft's pre-standard twin with the same bytes.
 * And a describer (`describeOption`) that turns any option into plain JSON for `sluice decode`.
 * These run on the control path (building replies), not per forwarded packet.
 */
import { u16, u32, setU32, ipv4ToString, toHex, copyBytes } from './bytes';
import { ParseError, type Parsed, fail, ok } from './errors';
import { MESSAGE_TYPE_NAMES } from './dhcp';

// ---- 55: Parameter Request List -------------------------------------------------------------

export const paramRequestList = {
  encodingLength(codes: readonly number[]): number { return codes.length; },
  encode(codes: readonly number[], buf: Uint8Array, offset = 0): number {
    for (let i = 0; i < codes.length; i++) buf[offset + i] = codes[i]!;
    return codes.length;
  },
  decode(b: Uint8Array, off: number, len: number): number[] {
    return Array.from(b.subarray(off, off + len));
  },
};

// ---- 82: Relay Agent Information -------------------------------------------------------------

export const RAI_CIRCUIT_ID = 1;
export const RAI_REMOTE_ID = 2;
export const RAI_LINK_SELECTION = 5;
export const RAI_SUBSCRIBER_ID = 6;
export const RAI_SERVER_ID_OVERRIDE = 11;
export const RAI_RELAY_ID = 12;
export const RAI_VSS = 151;
export const RAI_VSS_CONTROL = 152;

export interface SubOption { code: number; data: Uint8Array }

export const relayAgentInfo = {
  encodingLength(subs: readonly SubOption[]): number {
    let n = 0;
    for (const s of subs) n += 2 + s.data.length;
    return n;
  },
  /** Sub-options must each be ≤ 255 bytes; the option as a whole is split by the DHCP encoder. */
  encode(subs: readonly SubOption[], buf: Uint8Array, offset = 0): number {
    let p = offset;
    for (const s of subs) {
      if (s.data.length > 255) throw new RangeError(`relay sub-option ${s.code} longer than 255 bytes`);
      buf[p] = s.code;
      buf[p + 1] = s.data.length;
      buf.set(s.data, p + 2);
      p += 2 + s.data.length;
    }
    return p - offset;
  },
  /** RFC 3046 2.0: "The Agent Information field consists of a sequence of SubOpt/Length/Value tuples". */
  decode(b: Uint8Array, off: number, len: number): Parsed<SubOption[]> {
    const out: SubOption[] = [];
    const end = off + len;
    let p = off;
    while (p < end) {
      if (p + 2 > end) return fail(ParseError.TRUNCATED, 'option82');
      const l = b[p + 1]!;
      if (p + 2 + l > end) return fail(ParseError.BAD_OPTION, `option82.sub${b[p]}`);
      out.push({ code: b[p]!, data: copyBytes(b, p + 2, p + 2 + l) });
      p += 2 + l;
    }
    return ok(out);
  },
  /** Finds a sub-option without allocating: returns its data offset (length in b[ret - 1]) or -1. */
  find(b: Uint8Array, off: number, len: number, code: number): number {
    const end = off + len;
    for (let p = off; p + 2 <= end;) {
      const l = b[p + 1]!;
      if (p + 2 + l > end) return -1;
      if (b[p] === code) return p + 2;
      p += 2 + l;
    }
    return -1;
  },
};

// ---- 121 / 249: Classless Static Routes -------------------------------------------------------

/** One route: destination prefix (IPv4 as a uint32, host bits zero), its length, and the router. */
export interface ClasslessRoute { destination: number; prefixLength: number; router: number }

function maskOf(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/**
 * RFC 3442: "each route consists of a 'destination descriptor' and the IP address of the router":
 * the descriptor is the prefix length followed by the significant octets of the subnet number,
 * ceil(width / 8) of them ("the number of significant octets ... the width divided by eight, rounded
 * up"). A default route is the single byte 0 followed by the router.
 */
export function classlessRoutesLength(routes: readonly ClasslessRoute[]): number {
  let n = 0;
  for (const r of routes) n += 1 + ((r.prefixLength + 7) >> 3) + 4;
  return n;
}

export function encodeClasslessRoutesInto(routes: readonly ClasslessRoute[], buf: Uint8Array, offset = 0): number {
  let p = offset;
  for (const r of routes) {
    if (!(r.prefixLength >= 0 && r.prefixLength <= 32)) throw new RangeError(`prefix length ${r.prefixLength}`);
    const sig = (r.prefixLength + 7) >> 3;
    const d = (r.destination & maskOf(r.prefixLength)) >>> 0;
    buf[p++] = r.prefixLength;
    for (let i = 0; i < sig; i++) buf[p++] = (d >>> (24 - 8 * i)) & 0xff;
    setU32(buf, p, r.router);
    p += 4;
  }
  return p - offset;
}

/** The option value for 121/249 (may exceed 255 bytes: the DHCP encoder splits it per RFC 3396). */
export function encodeClasslessRoutes(routes: readonly ClasslessRoute[]): Uint8Array {
  const b = new Uint8Array(classlessRoutesLength(routes));
  encodeClasslessRoutesInto(routes, b, 0);
  return b;
}

/**
 * Decodes a (concatenated) 121/249 value. A width above 32 or a descriptor/router cut short makes
 * the whole option invalid (RFC 3442 gives no way to resynchronise). Stray bits beyond the prefix
 * length are cleared, as a client installing the route would.
 */
export function decodeClasslessRoutes(b: Uint8Array, off: number, len: number): Parsed<ClasslessRoute[]> {
  const out: ClasslessRoute[] = [];
  const end = off + len;
  let p = off;
  while (p < end) {
    const w = b[p]!;
    if (w > 32) return fail(ParseError.BAD_VALUE, `route[${out.length}].width`);
    const sig = (w + 7) >> 3;
    if (p + 1 + sig + 4 > end) return fail(ParseError.TRUNCATED, `route[${out.length}]`);
    let d = 0;
    for (let i = 0; i < 4; i++) d = d * 256 + (i < sig ? b[p + 1 + i]! : 0);
    out.push({ destination: (d & maskOf(w)) >>> 0, prefixLength: w, router: u32(b, p + 1 + sig) });
    p += 1 + sig + 4;
  }
  return ok(out);
}

export const classlessRoutes = {
  encodingLength: classlessRoutesLength,
  encode: encodeClasslessRoutesInto,
  decode: decodeClasslessRoutes,
};

// ---- describing any option for tools ------------------------------------------------------------

export const OPTION_NAMES: Readonly<Record<number, string>> = {
  1: 'subnet-mask', 2: 'time-offset', 3: 'router', 4: 'time-server', 6: 'dns-server', 12: 'hostname',
  15: 'domain-name', 26: 'mtu', 28: 'broadcast-address', 31: 'router-discovery', 33: 'static-routes',
  42: 'ntp-servers', 43: 'vendor-specific', 44: 'netbios-name-servers', 46: 'netbios-node-type',
  47: 'netbios-scope', 50: 'requested-address', 51: 'lease-time', 52: 'overload', 53: 'message-type',
  54: 'server-id', 55: 'parameter-request-list', 56: 'message', 57: 'max-message-size',
  58: 'renewal-time', 59: 'rebinding-time', 60: 'vendor-class-id', 61: 'client-id', 66: 'tftp-server',
  67: 'bootfile', 77: 'user-class', 81: 'client-fqdn', 82: 'relay-agent-info', 116: 'auto-config',
  118: 'subnet-selection', 119: 'domain-search', 121: 'classless-static-routes', 145: 'forcerenew-nonce',
  249: 'ms-classless-static-routes', 252: 'wpad',
};

const ADDR_LIST = new Set([1, 3, 4, 5, 6, 7, 9, 28, 32, 41, 42, 44, 45, 48, 49, 50, 54, 65, 69, 118]);
const U32 = new Set([2, 24, 35, 38, 51, 58, 59]);
const U16 = new Set([13, 22, 26, 57]);
const TEXT = new Set([12, 14, 15, 17, 18, 40, 47, 56, 60, 64, 66, 67, 252]);

function printable(b: Uint8Array): string | null {
  for (const x of b) if (x < 0x20 || x > 0x7e) return null;
  return String.fromCharCode(...b);
}

/** Plain JSON for one (concatenated) option value; malformed values come back with an `error`. */
export function describeOption(code: number, data: Uint8Array): Record<string, unknown> {
  const d: Record<string, unknown> = { code, name: OPTION_NAMES[code] ?? `option-${code}` };
  const n = data.length;
  if (ADDR_LIST.has(code)) {
    if (n % 4 !== 0 || n === 0) return { ...d, error: 'bad-length', hex: toHex(data) };
    const a: string[] = [];
    for (let i = 0; i < n; i += 4) a.push(ipv4ToString(u32(data, i)));
    d.value = code === 1 || code === 28 || code === 50 || code === 54 ? a[0] : a;
  } else if (U32.has(code)) {
    if (n !== 4) return { ...d, error: 'bad-length', hex: toHex(data) };
    d.value = code === 2 ? u32(data, 0) | 0 : u32(data, 0);
  } else if (U16.has(code)) {
    if (n !== 2) return { ...d, error: 'bad-length', hex: toHex(data) };
    d.value = u16(data, 0);
  } else if (TEXT.has(code)) {
    d.value = printable(data) ?? toHex(data);
  } else if (code === 53) {
    if (n !== 1) return { ...d, error: 'bad-length', hex: toHex(data) };
    d.value = data[0];
    d.type = MESSAGE_TYPE_NAMES[data[0]!] || `type-${data[0]}`;
  } else if (code === 52) {
    d.value = n === 1 ? data[0] : toHex(data);
  } else if (code === 55) {
    d.value = paramRequestList.decode(data, 0, n);
    d.names = (d.value as number[]).map((c) => OPTION_NAMES[c] ?? `option-${c}`);
  } else if (code === 61) {
    // RFC 2132 9.14: a type octet (1 = Ethernet, 255 = RFC 4361 IAID/DUID) then the identifier.
    if (n < 2) return { ...d, error: 'bad-length', hex: toHex(data) };
    d.type = data[0];
    d.value = toHex(data, 1);
  } else if (code === 82) {
    const r = relayAgentInfo.decode(data, 0, n);
    if (!r.ok) return { ...d, error: r.where, hex: toHex(data) };
    d.value = r.value.map((s) => ({ code: s.code, hex: toHex(s.data),
      ...(s.code === RAI_LINK_SELECTION || s.code === RAI_SERVER_ID_OVERRIDE) && s.data.length === 4
        ? { address: ipv4ToString(u32(s.data, 0)) } : {},
      ...(printable(s.data) !== null && s.data.length > 0 ? { text: printable(s.data) } : {}) }));
  } else if (code === 121 || code === 249) {
    const r = decodeClasslessRoutes(data, 0, n);
    if (!r.ok) return { ...d, error: `${r.where}: ${r.error === ParseError.BAD_VALUE ? 'bad-value' : 'truncated'}`, hex: toHex(data) };
    d.value = r.value.map((x) => ({ destination: `${ipv4ToString(x.destination)}/${x.prefixLength}`, router: ipv4ToString(x.router) }));
  } else {
    d.hex = toHex(data);
    const t = printable(data);
    if (t !== null && n > 0) d.text = t;
  }
  return d;
}
