/**
 * IPv6 header (RFC 8200) and its extension-header chain, enough for classification and steering:
 * sluice passes IPv6 through untouched unless a rule matches it.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version| Traffic Class |           Flow Label                  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |         Payload Length        |  Next Header  |   Hop Limit   |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                   Source Address (128 bits)                   |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                Destination Address (128 bits)                 |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Extension headers walked (RFC 8200 4.1 order is not enforced; each is bounded by the payload):
 * Hop-by-Hop (0), Routing (43), Fragment (44, fixed 8 bytes), Destination Options (60), and the
 * RFC 6564-shaped Mobility (135), HIP (139), Shim6 (140), experimental (253, 254). ESP (50), AH (51)
 * and everything else end the chain as the "upper layer".
 */
import { u16, u32, ipv6ToString, copyBytes } from './bytes';
import { ParseError, type Parsed, fail, ok } from './errors';
import { checkedView } from './view';
import { IpProto } from './ipv4';

export const VER_TC_FLOW = 0;
export const PAYLOAD_LEN = 4;
export const NEXT_HEADER = 6;
export const HOP_LIMIT = 7;
export const SRC_ADDR = 8;
export const DST_ADDR = 24;
export const HEADER_LEN = 40;

export const NH_HOP_BY_HOP = 0;
export const NH_ROUTING = 43;
export const NH_FRAGMENT = 44;
export const NH_ICMPV6 = IpProto.ICMPV6;
export const NH_NONE = 59;
export const NH_DEST_OPTS = 60;

/** Extension headers with the (Next Header, Hdr Ext Len in 8-octet units beyond the first 8) shape. */
export function isGenericExtension(nh: number): boolean {
  return nh === 0 || nh === 43 || nh === 60 || nh === 135 || nh === 139 || nh === 140 || nh === 253 || nh === 254;
}

export function checkIpv6(b: Uint8Array, off: number, len: number): ParseError {
  if (len < HEADER_LEN || off < 0 || off + len > b.length) return ParseError.TRUNCATED;
  if (b[off]! >> 4 !== 6) return ParseError.BAD_VERSION;
  const pl = u16(b, off + PAYLOAD_LEN);
  // Payload Length 0 with a Hop-by-Hop header means a jumbogram (RFC 2675): not supported here.
  if (pl === 0 && b[off + NEXT_HEADER] === NH_HOP_BY_HOP) return ParseError.UNSUPPORTED;
  if (HEADER_LEN + pl > len) return ParseError.TRUNCATED;
  return ParseError.NONE;
}

/** Where the extension chain ends; filled by Ipv6Packet.walk without allocating. */
export class Ipv6Chain {
  error: ParseError = ParseError.NONE;
  /** Upper-layer protocol (Next Header after the last extension header). */
  proto = 0;
  /** Offset and length of the upper-layer header + data. */
  l4Offset = 0;
  l4Length = 0;
  isFragment = false;
  /** Fragment Offset in bytes (0 for the first fragment). */
  fragmentOffset = 0;
  moreFragments = false;
  fragmentId = 0;
  headers = 0;
}

export class Ipv6Packet extends checkedView(checkIpv6) {
  get version(): number { return this.bytes[this.offset]! >> 4; }
  get trafficClass(): number { return (u16(this.bytes, this.offset) >> 4) & 0xff; }
  get flowLabel(): number { return u32(this.bytes, this.offset) & 0xfffff; }
  get payloadLength(): number { return u16(this.bytes, this.offset + PAYLOAD_LEN); }
  get nextHeader(): number { return this.bytes[this.offset + NEXT_HEADER]!; }
  get hopLimit(): number { return this.bytes[this.offset + HOP_LIMIT]!; }
  get srcOffset(): number { return this.offset + SRC_ADDR; }
  get dstOffset(): number { return this.offset + DST_ADDR; }
  get srcString(): string { return ipv6ToString(this.bytes, this.offset + SRC_ADDR); }
  get dstString(): string { return ipv6ToString(this.bytes, this.offset + DST_ADDR); }

  /** Walks the extension headers into `out` (bounded: each header advances ≥ 8 bytes). */
  walk(out: Ipv6Chain): Ipv6Chain {
    const b = this.bytes, o = this.offset;
    out.error = ParseError.NONE; out.isFragment = false; out.fragmentOffset = 0; out.moreFragments = false;
    out.fragmentId = 0; out.headers = 0;
    const end = o + HEADER_LEN + this.payloadLength;
    let nh = b[o + NEXT_HEADER]!;
    let p = o + HEADER_LEN;
    for (;;) {
      if (isGenericExtension(nh)) {
        if (p + 8 > end) { out.error = ParseError.TRUNCATED; break; }
        const n = (b[p + 1]! + 1) << 3;
        if (p + n > end) { out.error = ParseError.BAD_LENGTH; break; }
        nh = b[p]!;
        p += n;
      } else if (nh === NH_FRAGMENT) {
        if (p + 8 > end) { out.error = ParseError.TRUNCATED; break; }
        out.isFragment = true;
        const fo = u16(b, p + 2);
        out.fragmentOffset = fo & 0xfff8;
        out.moreFragments = (fo & 1) !== 0;
        out.fragmentId = u32(b, p + 4);
        nh = b[p]!;
        p += 8;
      } else {
        break;
      }
      out.headers++;
    }
    out.proto = nh;
    out.l4Offset = p;
    out.l4Length = end - p;
    return out;
  }
}


export interface Ipv6Repr {
  /** 16 bytes each. */
  src: Uint8Array;
  dst: Uint8Array;
  nextHeader: number;
  payloadLength: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
}

export const ipv6Repr = {
  encodingLength(): number { return HEADER_LEN; },
  encode(r: Ipv6Repr, buf: Uint8Array, offset = 0): number {
    const w = (6 << 28) | ((r.trafficClass ?? 0) << 20) | (r.flowLabel ?? 0);
    buf[offset] = w >>> 24; buf[offset + 1] = (w >>> 16) & 0xff; buf[offset + 2] = (w >>> 8) & 0xff; buf[offset + 3] = w & 0xff;
    buf[offset + PAYLOAD_LEN] = r.payloadLength >> 8;
    buf[offset + PAYLOAD_LEN + 1] = r.payloadLength & 0xff;
    buf[offset + NEXT_HEADER] = r.nextHeader;
    buf[offset + HOP_LIMIT] = r.hopLimit ?? 64;
    buf.set(r.src.subarray(0, 16), offset + SRC_ADDR);
    buf.set(r.dst.subarray(0, 16), offset + DST_ADDR);
    return HEADER_LEN;
  },
  decode(buf: Uint8Array, offset = 0, length = buf.length - offset): Parsed<Ipv6Repr> {
    const e = checkIpv6(buf, offset, length);
    if (e !== ParseError.NONE) return fail(e, 'ipv6');
    const v = new Ipv6Packet(buf, offset, length);
    return ok({ src: copyBytes(buf, offset + SRC_ADDR, offset + SRC_ADDR + 16), dst: copyBytes(buf, offset + DST_ADDR, offset + DST_ADDR + 16),
      nextHeader: v.nextHeader, payloadLength: v.payloadLength, hopLimit: v.hopLimit,
      trafficClass: v.trafficClass, flowLabel: v.flowLabel });
  },
};
