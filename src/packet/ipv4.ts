/**
 * IPv4 header (RFC 791): a view that reads and rewrites fields in place, and a Repr for building.
 *
 * Contract: on untrusted bytes call `Ipv4Packet.check(bytes, offset, length)` (or `wrapChecked`) first;
 * the getters then read inside [offset, offset + headerLength). Setters keep the header checksum right
 * with the RFC 1624 incremental update, so a NAT rewrite costs a few additions. The address setters
 * do NOT touch a TCP/UDP checksum (that lives in another header): use rewrite.ts for that.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version|  IHL  |    DSCP   |ECN|          Total Length         |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |         Identification        |Flags|      Fragment Offset    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Time to Live |    Protocol   |         Header Checksum       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                       Source Address                          |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Destination Address                        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Options                    |    Padding    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
import { u16, u32, setU16, setU32, copyBytes } from './bytes';
import { checksumAdjust, checksumAdjust32, internetChecksum } from './checksum';
import { ParseError, type Parsed, fail, ok } from './errors';
import { checkedView } from './view';

export const VER_IHL = 0;
export const DSCP_ECN = 1;
export const TOTAL_LEN = 2;
export const IDENT = 4;
export const FLG_OFF = 6;
export const TTL = 8;
export const PROTOCOL = 9;
export const CHECKSUM = 10;
export const SRC_ADDR = 12;
export const DST_ADDR = 16;
export const HEADER_LEN = 20;

export const FLAG_DF = 0x4000;
export const FLAG_MF = 0x2000;
export const FRAG_OFFSET_MASK = 0x1fff;

/**
 * IP protocol numbers (IANA), the one definition. A const enum: the compiler writes the number
 * where it is used, so per-packet comparisons load nothing from this module.
 */
export const enum IpProto { ICMP = 1, TCP = 6, UDP = 17, ESP = 50, AH = 51, ICMPV6 = 58 }
export const PROTO_ICMP = IpProto.ICMP;
export const PROTO_TCP = IpProto.TCP;
export const PROTO_UDP = IpProto.UDP;
export const PROTO_ESP = IpProto.ESP;
export const PROTO_AH = IpProto.AH;

/**
 * Validates an IPv4 header for the checked constructor. The packet may be longer than Total Length
 * (link-layer padding); it may not be shorter.
 */
export function checkIpv4(b: Uint8Array, off: number, len: number): ParseError {
  if (len < HEADER_LEN || off < 0 || off + len > b.length) return ParseError.TRUNCATED;
  const vi = b[off]!;
  if (vi >> 4 !== 4) return ParseError.BAD_VERSION;
  const hl = (vi & 0x0f) << 2;
  if (hl < HEADER_LEN) return ParseError.BAD_HEADER_LENGTH;
  if (hl > len) return ParseError.TRUNCATED;
  const tl = u16(b, off + TOTAL_LEN);
  if (tl < hl) return ParseError.BAD_TOTAL_LENGTH;
  if (tl > len) return ParseError.TRUNCATED;
  return ParseError.NONE;
}

/** A view over an IPv4 header in place. Reusable: `wrap` re-points it without allocating. */
export class Ipv4Packet extends checkedView(checkIpv4) {
  get version(): number { return this.bytes[this.offset]! >> 4; }
  get headerLength(): number { return (this.bytes[this.offset]! & 0x0f) << 2; }
  get dscp(): number { return this.bytes[this.offset + DSCP_ECN]! >> 2; }
  get ecn(): number { return this.bytes[this.offset + DSCP_ECN]! & 3; }
  get totalLength(): number { return u16(this.bytes, this.offset + TOTAL_LEN); }
  get ident(): number { return u16(this.bytes, this.offset + IDENT); }
  get dontFragment(): boolean { return (u16(this.bytes, this.offset + FLG_OFF) & FLAG_DF) !== 0; }
  get moreFragments(): boolean { return (u16(this.bytes, this.offset + FLG_OFF) & FLAG_MF) !== 0; }
  /** Fragment offset in bytes (the field counts 8-byte units). */
  get fragmentOffset(): number { return (u16(this.bytes, this.offset + FLG_OFF) & FRAG_OFFSET_MASK) << 3; }
  get ttl(): number { return this.bytes[this.offset + TTL]!; }
  get protocol(): number { return this.bytes[this.offset + PROTOCOL]!; }
  get checksum(): number { return u16(this.bytes, this.offset + CHECKSUM); }
  get src(): number { return u32(this.bytes, this.offset + SRC_ADDR); }
  get dst(): number { return u32(this.bytes, this.offset + DST_ADDR); }
  get payloadOffset(): number { return this.offset + this.headerLength; }
  get payloadLength(): number { return this.totalLength - this.headerLength; }

  /** True when the header checksum verifies (sum over the header including options is 0xffff). */
  verifyChecksum(): boolean {
    return internetChecksum(this.bytes, this.offset, this.headerLength) === 0;
  }

  /** Recomputes the header checksum from scratch. */
  fillChecksum(): void {
    const o = this.offset;
    setU16(this.bytes, o + CHECKSUM, 0);
    setU16(this.bytes, o + CHECKSUM, internetChecksum(this.bytes, o, this.headerLength));
  }

  setSrc(addr: number): void { this.setAddr(SRC_ADDR, addr); }
  setDst(addr: number): void { this.setAddr(DST_ADDR, addr); }

  private setAddr(field: number, addr: number): void {
    const b = this.bytes, o = this.offset;
    const old = u32(b, o + field);
    setU32(b, o + field, addr);
    setU16(b, o + CHECKSUM, checksumAdjust32(u16(b, o + CHECKSUM), old, addr >>> 0));
  }

  /** Sets TTL; the checksum covers TTL and protocol as one 16-bit word. */
  setTtl(ttl: number): void {
    this.setWordByte(TTL, ttl);
  }

  /** Decrements TTL (as a router does) and returns the new value; 0 stays 0. */
  decrementTtl(): number {
    const t = this.ttl;
    if (t > 0) this.setTtl(t - 1);
    return t > 0 ? t - 1 : 0;
  }

  setDscp(dscp: number): void {
    this.setWordByte(DSCP_ECN, ((dscp & 0x3f) << 2) | this.ecn);
  }

  setIdent(id: number): void {
    const b = this.bytes, o = this.offset;
    const old = u16(b, o + IDENT);
    setU16(b, o + IDENT, id);
    setU16(b, o + CHECKSUM, checksumAdjust(u16(b, o + CHECKSUM), old, id & 0xffff));
  }

  /** Writes one byte and adjusts the checksum by the 16-bit word that contains it. */
  private setWordByte(field: number, value: number): void {
    const b = this.bytes, o = this.offset;
    const w = (field & ~1);
    const old = u16(b, o + w);
    b[o + field] = value & 0xff;
    setU16(b, o + CHECKSUM, checksumAdjust(u16(b, o + CHECKSUM), old, u16(b, o + w)));
  }
}


/** Plain IPv4 header fields for building and for tools. */
export interface Ipv4Repr {
  src: number;
  dst: number;
  protocol: number;
  /** Bytes after the header (the header's Total Length = headerLength + payloadLength). */
  payloadLength: number;
  ttl?: number;
  ident?: number;
  dscp?: number;
  ecn?: number;
  dontFragment?: boolean;
  moreFragments?: boolean;
  /** In bytes; must be a multiple of 8. */
  fragmentOffset?: number;
  /** Raw option bytes (padded to a multiple of 4 with zeros, End of Option List, when emitted). */
  options?: Uint8Array;
  /** Only from decode: the checksum as found. */
  checksum?: number;
}

export const ipv4Repr = {
  encodingLength(r: Ipv4Repr): number {
    return HEADER_LEN + (((r.options?.length ?? 0) + 3) & ~3);
  },

  /** Writes the header (with a correct checksum) at buf[offset]; returns the header length. */
  encode(r: Ipv4Repr, buf: Uint8Array, offset = 0): number {
    const hl = ipv4Repr.encodingLength(r);
    const o = offset;
    buf.fill(0, o, o + hl);
    buf[o] = 0x40 | (hl >> 2);
    buf[o + DSCP_ECN] = ((r.dscp ?? 0) << 2) | (r.ecn ?? 0);
    setU16(buf, o + TOTAL_LEN, hl + r.payloadLength);
    setU16(buf, o + IDENT, r.ident ?? 0);
    setU16(buf, o + FLG_OFF, (r.dontFragment ? FLAG_DF : 0) | (r.moreFragments ? FLAG_MF : 0)
      | (((r.fragmentOffset ?? 0) >> 3) & FRAG_OFFSET_MASK));
    buf[o + TTL] = r.ttl ?? 64;
    buf[o + PROTOCOL] = r.protocol;
    setU32(buf, o + SRC_ADDR, r.src);
    setU32(buf, o + DST_ADDR, r.dst);
    if (r.options) buf.set(r.options, o + HEADER_LEN);
    setU16(buf, o + CHECKSUM, internetChecksum(buf, o, hl));
    return hl;
  },

  decode(buf: Uint8Array, offset = 0, length = buf.length - offset): Parsed<Ipv4Repr> {
    const e = checkIpv4(buf, offset, length);
    if (e !== ParseError.NONE) return fail(e, 'ipv4');
    const v = new Ipv4Packet(buf, offset, length);
    if (!v.verifyChecksum()) return fail(ParseError.BAD_CHECKSUM, 'ipv4.checksum');
    const r: Ipv4Repr = {
      src: v.src, dst: v.dst, protocol: v.protocol, payloadLength: v.payloadLength, ttl: v.ttl,
      ident: v.ident, dscp: v.dscp, ecn: v.ecn, dontFragment: v.dontFragment,
      moreFragments: v.moreFragments, fragmentOffset: v.fragmentOffset, checksum: v.checksum,
    };
    if (v.headerLength > HEADER_LEN) {
      r.options = copyBytes(buf, offset + HEADER_LEN, offset + v.headerLength);
    }
    return ok(r);
  },
};
