/**
 * DHCP / BOOTP message (RFC 2131, RFC 951) and its option area (RFC 2132, RFC 3396).
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------+---------------+---------------+---------------+
 *   |     op (1)    |   htype (1)   |   hlen (1)    |   hops (1)    |
 *   +---------------+---------------+---------------+---------------+
 *   |                            xid (4)                            |
 *   +-------------------------------+-------------------------------+
 *   |           secs (2)            |           flags (2)           |
 *   +-------------------------------+-------------------------------+
 *   |                          ciaddr  (4)                          |
 *   |                          yiaddr  (4)                          |
 *   |                          siaddr  (4)                          |
 *   |                          giaddr  (4)                          |
 *   +---------------------------------------------------------------+
 *   |                          chaddr  (16)                         |
 *   |                          sname   (64)                         |
 *   |                          file    (128)                        |
 *   +---------------------------------------------------------------+
 *   |          magic cookie 99.130.83.99 (4)  |  options (variable) |
 *   +---------------------------------------------------------------+
 *
 * Options are code/length/value, except Pad (0) and End (255) which are one byte. Option 52 (overload)
 * moves more options into `file` (1), `sname` (2) or both (3). RFC 3396: an option longer than 255
 * bytes is split into several instances with the same code, which the receiver concatenates, taking
 * the options field first, then `file`, then `sname` (the order RFC 2131 4.1 gives for overloads).
 * The iterator never loops: each step moves forward by at least one byte inside a fixed region.
 */
import { u16, u32, setU16, setU32, copyBytes } from './bytes';
import { ParseError, type Parsed, fail, ok } from './errors';
import { checkedView } from './view';

export const OP = 0;
export const HTYPE = 1;
export const HLEN = 2;
export const HOPS = 3;
export const XID = 4;
export const SECS = 8;
export const FLAGS = 10;
export const CIADDR = 12;
export const YIADDR = 16;
export const SIADDR = 20;
export const GIADDR = 24;
export const CHADDR = 28;
export const SNAME = 44;
export const SNAME_LEN = 64;
export const FILE = 108;
export const FILE_LEN = 128;
export const MAGIC = 236;
export const OPTIONS = 240;
export const HEADER_LEN = 240;
export const MAGIC_COOKIE = 0x63825363;
export const FLAG_BROADCAST = 0x8000;
export const OP_REQUEST = 1;
export const OP_REPLY = 2;
export const PORT_SERVER = 67;
export const PORT_CLIENT = 68;

export const OPT_PAD = 0;
export const OPT_SUBNET_MASK = 1;
export const OPT_ROUTER = 3;
export const OPT_DNS = 6;
export const OPT_HOSTNAME = 12;
export const OPT_REQUESTED_IP = 50;
export const OPT_LEASE_TIME = 51;
export const OPT_OVERLOAD = 52;
export const OPT_MESSAGE_TYPE = 53;
export const OPT_SERVER_ID = 54;
export const OPT_PARAM_REQUEST = 55;
export const OPT_MAX_SIZE = 57;
export const OPT_VENDOR_CLASS = 60;
export const OPT_CLIENT_ID = 61;
export const OPT_RELAY_AGENT = 82;
export const OPT_CLASSLESS_ROUTES = 121;
export const OPT_MS_CLASSLESS_ROUTES = 249;
export const OPT_END = 255;

export const enum MessageType {
  DISCOVER = 1, OFFER = 2, REQUEST = 3, DECLINE = 4, ACK = 5, NAK = 6, RELEASE = 7, INFORM = 8,
}
export const MESSAGE_TYPE_NAMES: readonly string[] = [
  '', 'DHCPDISCOVER', 'DHCPOFFER', 'DHCPREQUEST', 'DHCPDECLINE', 'DHCPACK', 'DHCPNAK', 'DHCPRELEASE',
  'DHCPINFORM', 'DHCPFORCERENEW', 'DHCPLEASEQUERY', 'DHCPLEASEUNASSIGNED', 'DHCPLEASEUNKNOWN',
  'DHCPLEASEACTIVE', 'DHCPBULKLEASEQUERY', 'DHCPLEASEQUERYDONE', 'DHCPACTIVELEASEQUERY',
  'DHCPLEASEQUERYSTATUS', 'DHCPTLS',
];

/** `len` is the UDP payload length. */
export function checkDhcp(b: Uint8Array, off: number, len: number): ParseError {
  if (len < HEADER_LEN || off < 0 || off + len > b.length) return ParseError.TRUNCATED;
  if (u32(b, off + MAGIC) !== MAGIC_COOKIE) return ParseError.BAD_MAGIC;
  const op = b[off + OP]!;
  if (op !== OP_REQUEST && op !== OP_REPLY) return ParseError.BAD_VALUE;
  if (b[off + HLEN]! > 16) return ParseError.BAD_VALUE;
  return ParseError.NONE;
}

export class DhcpPacket extends checkedView(checkDhcp) {
  get op(): number { return this.bytes[this.offset + OP]!; }
  get htype(): number { return this.bytes[this.offset + HTYPE]!; }
  get hlen(): number { return this.bytes[this.offset + HLEN]!; }
  get hops(): number { return this.bytes[this.offset + HOPS]!; }
  get xid(): number { return u32(this.bytes, this.offset + XID); }
  get secs(): number { return u16(this.bytes, this.offset + SECS); }
  get flags(): number { return u16(this.bytes, this.offset + FLAGS); }
  get broadcast(): boolean { return (this.flags & FLAG_BROADCAST) !== 0; }
  get ciaddr(): number { return u32(this.bytes, this.offset + CIADDR); }
  get yiaddr(): number { return u32(this.bytes, this.offset + YIADDR); }
  get siaddr(): number { return u32(this.bytes, this.offset + SIADDR); }
  get giaddr(): number { return u32(this.bytes, this.offset + GIADDR); }
  /** chaddr occupies 16 bytes at offset + CHADDR; hlen of them are the hardware address. */
  get chaddrOffset(): number { return this.offset + CHADDR; }
  get optionsOffset(): number { return this.offset + OPTIONS; }

  setHops(v: number): void { this.bytes[this.offset + HOPS] = v; }
  setXid(v: number): void { setU32(this.bytes, this.offset + XID, v); }
  setFlags(v: number): void { setU16(this.bytes, this.offset + FLAGS, v); }
  setCiaddr(a: number): void { setU32(this.bytes, this.offset + CIADDR, a); }
  setYiaddr(a: number): void { setU32(this.bytes, this.offset + YIADDR, a); }
  setSiaddr(a: number): void { setU32(this.bytes, this.offset + SIADDR, a); }
  setGiaddr(a: number): void { setU32(this.bytes, this.offset + GIADDR, a); }
}

const EMPTY = new Uint8Array(0);

export const enum OptionRegion { OPTIONS = 0, FILE = 1, SNAME = 2, DONE = 3 }

/**
 * Iterates option instances in receive order (options, then file, then sname when overloaded),
 * skipping Pad and stopping each region at End. No allocation:
 *   it.reset(bytes, dhcpOffset, dhcpLength); while (it.next()) { it.code, it.dataOffset, it.dataLength }
 * `error` is NONE after a clean walk, BAD_OPTION when a length runs past its region.
 * A missing End at the end of a region is tolerated (many stacks omit it when the region is full).
 */
export class DhcpOptionIter {
  bytes: Uint8Array = EMPTY;
  code = 0;
  dataOffset = 0;
  dataLength = 0;
  region: OptionRegion = OptionRegion.OPTIONS;
  error: ParseError = ParseError.NONE;
  /** Option 52's value once seen in the options field (0: none). */
  overload = 0;
  private base = 0;
  private pos = 0;
  private end = 0;

  /** `length` is the DHCP message length (UDP payload); validates the fixed header first. */
  reset(bytes: Uint8Array, offset: number, length: number): this {
    this.bytes = bytes;
    this.base = offset;
    this.code = 0; this.dataOffset = 0; this.dataLength = 0; this.overload = 0;
    this.error = checkDhcp(bytes, offset, length);
    this.region = OptionRegion.OPTIONS;
    this.pos = offset + OPTIONS;
    this.end = offset + length;
    if (this.error !== ParseError.NONE) { this.region = OptionRegion.DONE; this.pos = this.end; }
    return this;
  }

  next(): boolean {
    const b = this.bytes;
    while (this.region !== OptionRegion.DONE) {
      const p = this.pos;
      if (p >= this.end) { this.nextRegion(); continue; }
      const c = b[p]!;
      if (c === OPT_PAD) { this.pos = p + 1; continue; }
      if (c === OPT_END) { this.nextRegion(); continue; }
      if (p + 2 > this.end) { this.error = ParseError.BAD_OPTION; this.region = OptionRegion.DONE; return false; }
      const l = b[p + 1]!;
      if (p + 2 + l > this.end) { this.error = ParseError.BAD_OPTION; this.region = OptionRegion.DONE; return false; }
      this.code = c;
      this.dataOffset = p + 2;
      this.dataLength = l;
      this.pos = p + 2 + l;
      // RFC 2131 4.1: the overload option "MUST appear in the 'options' field"; elsewhere it is ignored.
      if (c === OPT_OVERLOAD && l === 1 && this.region === OptionRegion.OPTIONS && this.overload === 0) {
        const v = b[p + 2]!;
        this.overload = v >= 1 && v <= 3 ? v : 0;
      }
      return true;
    }
    return false;
  }

  private nextRegion(): void {
    if (this.region === OptionRegion.OPTIONS && (this.overload & 1) !== 0) {
      this.region = OptionRegion.FILE;
      this.pos = this.base + FILE;
      this.end = this.pos + FILE_LEN;
    } else if (this.region !== OptionRegion.SNAME && (this.overload & 2) !== 0) {
      this.region = OptionRegion.SNAME;
      this.pos = this.base + SNAME;
      this.end = this.pos + SNAME_LEN;
    } else {
      this.region = OptionRegion.DONE;
    }
  }

  /** Advances to the next instance of `code` (after reset: the first); false when there is none. */
  find(code: number): boolean {
    while (this.next()) if (this.code === code) return true;
    return false;
  }
}

/** RFC 3396 total length of all instances of `code` (-1 when the options are malformed). */
export function optionTotalLength(it: DhcpOptionIter, bytes: Uint8Array, off: number, len: number, code: number): number {
  it.reset(bytes, off, len);
  let n = 0, seen = false;
  while (it.next()) if (it.code === code) { n += it.dataLength; seen = true; }
  if (it.error !== ParseError.NONE) return -1;
  return seen ? n : -1;
}

/** A decoded option: the concatenation (RFC 3396) of every instance with this code. */
export interface DhcpOptionRepr { code: number; data: Uint8Array }

export interface DhcpRepr {
  op: number;
  htype?: number;
  hops?: number;
  xid: number;
  secs?: number;
  flags?: number;
  ciaddr?: number;
  yiaddr?: number;
  siaddr?: number;
  giaddr?: number;
  /** The hardware address (hlen = its length, ≤ 16). */
  chaddr: Uint8Array;
  sname?: Uint8Array;
  file?: Uint8Array;
  /** In order; data longer than 255 is split into several instances on encode (RFC 3396). */
  options: DhcpOptionRepr[];
  /** Only from decode: whether options came from overloaded file/sname fields. */
  overload?: number;
}

/** BOOTP's minimum message (RFC 951 / RFC 1542: 300 bytes); encode pads with zeros up to it. */
export const BOOTP_MIN_LEN = 300;

export const dhcpRepr = {
  encodingLength(r: DhcpRepr, minLength = BOOTP_MIN_LEN): number {
    let n = HEADER_LEN + 1;
    for (const o of r.options) n += Math.max(1, Math.ceil(o.data.length / 255)) * 2 + o.data.length;
    return Math.max(n, minLength);
  },

  encode(r: DhcpRepr, buf: Uint8Array, offset = 0, minLength = BOOTP_MIN_LEN): number {
    const n = dhcpRepr.encodingLength(r, minLength);
    const o = offset;
    buf.fill(0, o, o + n);
    buf[o + OP] = r.op;
    buf[o + HTYPE] = r.htype ?? 1;
    buf[o + HLEN] = r.chaddr.length;
    buf[o + HOPS] = r.hops ?? 0;
    setU32(buf, o + XID, r.xid);
    setU16(buf, o + SECS, r.secs ?? 0);
    setU16(buf, o + FLAGS, r.flags ?? 0);
    setU32(buf, o + CIADDR, r.ciaddr ?? 0);
    setU32(buf, o + YIADDR, r.yiaddr ?? 0);
    setU32(buf, o + SIADDR, r.siaddr ?? 0);
    setU32(buf, o + GIADDR, r.giaddr ?? 0);
    buf.set(r.chaddr.subarray(0, 16), o + CHADDR);
    if (r.sname) buf.set(r.sname.subarray(0, SNAME_LEN), o + SNAME);
    if (r.file) buf.set(r.file.subarray(0, FILE_LEN), o + FILE);
    setU32(buf, o + MAGIC, MAGIC_COOKIE);
    let p = o + OPTIONS;
    for (const opt of r.options) {
      let at = 0;
      do { // RFC 3396 5: split into instances of at most 255 bytes, in order.
        const l = Math.min(255, opt.data.length - at);
        buf[p] = opt.code;
        buf[p + 1] = l;
        buf.set(opt.data.subarray(at, at + l), p + 2);
        p += 2 + l;
        at += l;
      } while (at < opt.data.length);
    }
    buf[p] = OPT_END;
    return n;
  },

  decode(buf: Uint8Array, offset = 0, length = buf.length - offset): Parsed<DhcpRepr> {
    const it = new DhcpOptionIter().reset(buf, offset, length);
    if (it.error !== ParseError.NONE) return fail(it.error, 'dhcp');
    const parts = new Map<number, Uint8Array[]>();
    while (it.next()) {
      let l = parts.get(it.code);
      if (!l) parts.set(it.code, (l = []));
      l.push(buf.subarray(it.dataOffset, it.dataOffset + it.dataLength));
    }
    if (it.error !== ParseError.NONE) return fail(it.error, 'dhcp.options');
    const options: DhcpOptionRepr[] = [];
    for (const [code, chunks] of parts) options.push({ code, data: concat(chunks) });
    const v = new DhcpPacket(buf, offset, length);
    const r: DhcpRepr = {
      op: v.op, htype: v.htype, hops: v.hops, xid: v.xid, secs: v.secs, flags: v.flags, ciaddr: v.ciaddr,
      yiaddr: v.yiaddr, siaddr: v.siaddr, giaddr: v.giaddr,
      chaddr: copyBytes(buf, offset + CHADDR, offset + CHADDR + v.hlen), options,
    };
    if (!(it.overload & 2)) r.sname = copyBytes(buf, offset + SNAME, offset + SNAME + SNAME_LEN);
    if (!(it.overload & 1)) r.file = copyBytes(buf, offset + FILE, offset + FILE + FILE_LEN);
    if (it.overload) r.overload = it.overload;
    return ok(r);
  },
};

function concat(chunks: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let p = 0;
  for (const c of chunks) { out.set(c, p); p += c.length; }
  return out;
}

/** The option 53 value of a checked message (0 when absent), or -ParseError when options are bad. */
export function dhcpMessageType(it: DhcpOptionIter, bytes: Uint8Array, off: number, len: number): number {
  it.reset(bytes, off, len);
  while (it.next()) {
    if (it.code === OPT_MESSAGE_TYPE) return it.dataLength === 1 ? bytes[it.dataOffset]! : -ParseError.BAD_OPTION;
  }
  return it.error !== ParseError.NONE ? -it.error : 0;
}
