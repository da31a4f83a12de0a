/**
 * UDP header (RFC 768): view, checked constructor, checksum with the pseudo-header, Repr.
 *
 *    0      7 8     15 16    23 24    31
 *   +--------+--------+--------+--------+
 *   |     Source      |   Destination   |
 *   |      Port       |      Port       |
 *   +--------+--------+--------+--------+
 *   |     Length      |    Checksum     |
 *   +--------+--------+--------+--------+
 *   |          data octets ...
 *
 * The zero-checksum rule decides every setter here. RFC 768: "If the computed checksum is zero, it
 * is transmitted as all one bits (the equivalent in one's complement arithmetic). An all zero
 * transmitted checksum value means that the transmitter generated no checksum." So a zero checksum
 * stays zero through rewrites, and a computed zero is written as 0xffff. (Over IPv6 the checksum is
 * mandatory, RFC 8200 8.1; the same rules keep a valid one valid.)
 */
import { u16, setU16, copyBytes } from './bytes';
import { internetChecksum, pseudoHeaderSum4, pseudoHeaderSum6 } from './checksum';
import { ParseError, type Parsed, fail, ok } from './errors';
import { PROTO_UDP } from './ipv4';
import { transportView } from './transport';

export const SRC_PORT = 0;
export const DST_PORT = 2;
export const LENGTH = 4;
export const CHECKSUM = 6;
export const HEADER_LEN = 8;

/** `len` is what the IP layer says the UDP datagram may span; the UDP Length must fit inside it. */
export function checkUdp(b: Uint8Array, off: number, len: number): ParseError {
  if (len < HEADER_LEN || off < 0 || off + len > b.length) return ParseError.TRUNCATED;
  const ul = u16(b, off + LENGTH);
  if (ul < HEADER_LEN || ul > len) return ParseError.BAD_LENGTH;
  return ParseError.NONE;
}

export class UdpPacket extends transportView(checkUdp, CHECKSUM, true) {
  /** The UDP Length field (header + data). */
  get udpLength(): number { return u16(this.bytes, this.offset + LENGTH); }
  get payloadOffset(): number { return this.offset + HEADER_LEN; }
  get payloadLength(): number { return this.udpLength - HEADER_LEN; }

  /** The checksum this datagram should carry over IPv4 (0 computed → 0xffff). */
  computeChecksum4(src: number, dst: number): number {
    const ul = this.udpLength;
    const o = this.offset;
    const saved = u16(this.bytes, o + CHECKSUM);
    setU16(this.bytes, o + CHECKSUM, 0);
    const c = internetChecksum(this.bytes, o, ul, pseudoHeaderSum4(src, dst, PROTO_UDP, ul));
    setU16(this.bytes, o + CHECKSUM, saved);
    return c === 0 ? 0xffff : c;
  }

  /** True when the checksum is absent (zero) or right. */
  verifyChecksum4(src: number, dst: number): boolean {
    const c = this.checksum;
    if (c === 0) return true;
    const ul = this.udpLength;
    const r = internetChecksum(this.bytes, this.offset, ul, pseudoHeaderSum4(src, dst, PROTO_UDP, ul));
    return r === 0;
  }

  fillChecksum4(src: number, dst: number): void {
    setU16(this.bytes, this.offset + CHECKSUM, this.computeChecksum4(src, dst));
  }

  /** IPv6 (addresses read from the IPv6 header at b[ip6Off]); zero is not "absent" over IPv6. */
  fillChecksum6(ip6Off: number): void {
    const o = this.offset, ul = this.udpLength;
    setU16(this.bytes, o + CHECKSUM, 0);
    const c = internetChecksum(this.bytes, o, ul, pseudoHeaderSum6(this.bytes, ip6Off + 8, ip6Off + 24, PROTO_UDP, ul));
    setU16(this.bytes, o + CHECKSUM, c === 0 ? 0xffff : c);
  }

  verifyChecksum6(ip6Off: number): boolean {
    if (this.checksum === 0) return false;
    const ul = this.udpLength;
    return internetChecksum(this.bytes, this.offset, ul,
      pseudoHeaderSum6(this.bytes, ip6Off + 8, ip6Off + 24, PROTO_UDP, ul)) === 0;
  }
}


export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  /** Data bytes; encode copies them after the header. */
  payload: Uint8Array;
  /** Only from decode. */
  checksum?: number;
}

export const udpRepr = {
  encodingLength(r: UdpRepr): number { return HEADER_LEN + r.payload.length; },

  /**
   * Writes header and payload at buf[offset]. With `ipv4` addresses the checksum is filled; without,
   * it is left zero ("no checksum"). Returns the bytes written.
   */
  encode(r: UdpRepr, buf: Uint8Array, offset = 0, ipv4?: { src: number; dst: number }): number {
    const n = udpRepr.encodingLength(r);
    setU16(buf, offset + SRC_PORT, r.srcPort);
    setU16(buf, offset + DST_PORT, r.dstPort);
    setU16(buf, offset + LENGTH, n);
    setU16(buf, offset + CHECKSUM, 0);
    buf.set(r.payload, offset + HEADER_LEN);
    if (ipv4) new UdpPacket(buf, offset, n).fillChecksum4(ipv4.src, ipv4.dst);
    return n;
  },

  /** Decodes; with `ipv4` addresses a wrong (non-zero) checksum is an error. */
  decode(buf: Uint8Array, offset = 0, length = buf.length - offset, ipv4?: { src: number; dst: number }): Parsed<UdpRepr> {
    const e = checkUdp(buf, offset, length);
    if (e !== ParseError.NONE) return fail(e, 'udp');
    const v = new UdpPacket(buf, offset, length);
    if (ipv4 && !v.verifyChecksum4(ipv4.src, ipv4.dst)) return fail(ParseError.BAD_CHECKSUM, 'udp.checksum');
    return ok({
      srcPort: v.srcPort, dstPort: v.dstPort, checksum: v.checksum,
      payload: copyBytes(buf, v.payloadOffset, v.payloadOffset + v.payloadLength),
    });
  },
};
