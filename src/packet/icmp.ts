/**
 * ICMP (RFC 792) and ICMPv6 (RFC 4443) common header. sluice reads type/code for classification and
 * points at the embedded packet of error messages (the invoking packet's IP header + 8 bytes), which
 * a NAT must translate too.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |     Code      |          Checksum             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Identifier / unused / pointer / MTU   (4 bytes)           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Data: echo payload, or the invoking packet (errors)       |
 *
 * The ICMPv4 checksum covers the ICMP message only (no pseudo-header), so an IPv4 address rewrite
 * leaves it alone; ICMPv6 includes the IPv6 pseudo-header.
 */
import { u16, setU16, copyBytes } from './bytes';
import { checksumAdjust, internetChecksum } from './checksum';
import { ParseError, type Parsed, fail, ok } from './errors';
import { checkedView } from './view';

export const TYPE = 0;
export const CODE = 1;
export const CHECKSUM = 2;
export const REST = 4;
export const ID = 4;
export const SEQ = 6;
export const HEADER_LEN = 8;

export const ECHO_REPLY = 0;
export const DEST_UNREACHABLE = 3;
export const REDIRECT = 5;
export const ECHO_REQUEST = 8;
export const TIME_EXCEEDED = 11;
export const PARAMETER_PROBLEM = 12;
/** Code 4 of Destination Unreachable: "fragmentation needed and DF set" (PMTUD; RFC 1191 MTU in bytes 6-7). */
export const CODE_FRAG_NEEDED = 4;

export function checkIcmp(b: Uint8Array, off: number, len: number): ParseError {
  if (len < HEADER_LEN || off < 0 || off + len > b.length) return ParseError.TRUNCATED;
  return ParseError.NONE;
}

/** ICMPv4 error types that carry the invoking packet (RFC 792). */
export function isIcmpError(type: number): boolean {
  return type === DEST_UNREACHABLE || type === TIME_EXCEEDED || type === PARAMETER_PROBLEM || type === REDIRECT
    || type === 4 /* source quench */;
}

export class IcmpPacket extends checkedView(checkIcmp) {
  get type(): number { return this.bytes[this.offset + TYPE]!; }
  get code(): number { return this.bytes[this.offset + CODE]!; }
  get checksum(): number { return u16(this.bytes, this.offset + CHECKSUM); }
  /** Echo identifier (the "port" a NAT translates for echo). */
  get ident(): number { return u16(this.bytes, this.offset + ID); }
  get seq(): number { return u16(this.bytes, this.offset + SEQ); }
  /** Next-hop MTU of a frag-needed message (RFC 1191). */
  get mtu(): number { return u16(this.bytes, this.offset + SEQ); }
  get payloadOffset(): number { return this.offset + HEADER_LEN; }
  get payloadLength(): number { return this.length - HEADER_LEN; }

  /** ICMPv4: checksum over the whole message. */
  verifyChecksum(): boolean { return internetChecksum(this.bytes, this.offset, this.length) === 0; }

  fillChecksum(): void {
    setU16(this.bytes, this.offset + CHECKSUM, 0);
    setU16(this.bytes, this.offset + CHECKSUM, internetChecksum(this.bytes, this.offset, this.length));
  }

  setIdent(id: number): void {
    const b = this.bytes, o = this.offset;
    const old = u16(b, o + ID);
    setU16(b, o + ID, id);
    setU16(b, o + CHECKSUM, checksumAdjust(u16(b, o + CHECKSUM), old, id & 0xffff));
  }
}


export interface IcmpRepr { type: number; code: number; /** bytes 4-7 */ rest: number; payload: Uint8Array; checksum?: number }

export const icmpRepr = {
  encodingLength(r: IcmpRepr): number { return HEADER_LEN + r.payload.length; },
  /** ICMPv4 (checksum filled). */
  encode(r: IcmpRepr, buf: Uint8Array, offset = 0): number {
    const n = icmpRepr.encodingLength(r);
    buf[offset + TYPE] = r.type;
    buf[offset + CODE] = r.code;
    setU16(buf, offset + CHECKSUM, 0);
    setU16(buf, offset + REST, r.rest >>> 16);
    setU16(buf, offset + REST + 2, r.rest & 0xffff);
    buf.set(r.payload, offset + HEADER_LEN);
    new IcmpPacket(buf, offset, n).fillChecksum();
    return n;
  },
  decode(buf: Uint8Array, offset = 0, length = buf.length - offset, verify = true): Parsed<IcmpRepr> {
    const e = checkIcmp(buf, offset, length);
    if (e !== ParseError.NONE) return fail(e, 'icmp');
    const v = new IcmpPacket(buf, offset, length);
    if (verify && !v.verifyChecksum()) return fail(ParseError.BAD_CHECKSUM, 'icmp.checksum');
    return ok({ type: v.type, code: v.code, checksum: v.checksum,
      rest: ((u16(buf, offset + REST) << 16) | u16(buf, offset + REST + 2)) >>> 0,
      payload: copyBytes(buf, offset + HEADER_LEN, offset + length) });
  },
};
