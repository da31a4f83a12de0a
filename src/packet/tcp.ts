/**
 * TCP header (RFC 9293): ports, sequence numbers, data offset, flags, checksum with the
 * pseudo-header. sluice only reads TCP for classification and rewrites ports/addresses (NAT,
 * steering); it never terminates TCP.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |          Source Port          |       Destination Port        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                        Sequence Number                        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Acknowledgment Number                      |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Data |       |C|E|U|A|P|R|S|F|                               |
 *   | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 *   |       |       |R|E|G|K|H|T|N|N|                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |           Checksum            |         Urgent Pointer        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                           [Options]                           |
 */
import { u16, u32, setU16, setU32, copyBytes } from './bytes';
import { internetChecksum, pseudoHeaderSum4 } from './checksum';
import { ParseError, type Parsed, fail, ok } from './errors';
import { PROTO_TCP } from './ipv4';
import { transportView } from './transport';

export const SRC_PORT = 0;
export const DST_PORT = 2;
export const SEQ = 4;
export const ACK = 8;
export const DATA_OFF = 12;
export const FLAGS = 13;
export const WINDOW = 14;
export const CHECKSUM = 16;
export const URGENT = 18;
export const HEADER_LEN = 20;

export const FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK_FLAG = 0x10, URG = 0x20, ECE = 0x40, CWR = 0x80;

/** `len` is the TCP segment length (IP payload). */
export function checkTcp(b: Uint8Array, off: number, len: number): ParseError {
  if (len < HEADER_LEN || off < 0 || off + len > b.length) return ParseError.TRUNCATED;
  const d = (b[off + DATA_OFF]! >> 4) << 2;
  if (d < HEADER_LEN || d > len) return ParseError.BAD_HEADER_LENGTH;
  return ParseError.NONE;
}

export class TcpPacket extends transportView(checkTcp, CHECKSUM, false) {
  get seq(): number { return u32(this.bytes, this.offset + SEQ); }
  get ack(): number { return u32(this.bytes, this.offset + ACK); }
  get headerLength(): number { return (this.bytes[this.offset + DATA_OFF]! >> 4) << 2; }
  get flags(): number { return this.bytes[this.offset + FLAGS]!; }
  get window(): number { return u16(this.bytes, this.offset + WINDOW); }
  get urgent(): number { return u16(this.bytes, this.offset + URGENT); }
  get payloadOffset(): number { return this.offset + this.headerLength; }
  get payloadLength(): number { return this.length - this.headerLength; }

  computeChecksum4(src: number, dst: number): number {
    const o = this.offset, n = this.length;
    const saved = u16(this.bytes, o + CHECKSUM);
    setU16(this.bytes, o + CHECKSUM, 0);
    const c = internetChecksum(this.bytes, o, n, pseudoHeaderSum4(src, dst, PROTO_TCP, n));
    setU16(this.bytes, o + CHECKSUM, saved);
    return c;
  }

  verifyChecksum4(src: number, dst: number): boolean {
    return internetChecksum(this.bytes, this.offset, this.length, pseudoHeaderSum4(src, dst, PROTO_TCP, this.length)) === 0;
  }

  fillChecksum4(src: number, dst: number): void {
    setU16(this.bytes, this.offset + CHECKSUM, this.computeChecksum4(src, dst));
  }
}


export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq?: number;
  ack?: number;
  flags: number;
  window?: number;
  urgent?: number;
  /** Raw options, padded with zeros (End of Option List) to a multiple of 4. */
  options?: Uint8Array;
  payload?: Uint8Array;
  checksum?: number;
}

export const tcpRepr = {
  encodingLength(r: TcpRepr): number {
    return HEADER_LEN + (((r.options?.length ?? 0) + 3) & ~3) + (r.payload?.length ?? 0);
  },

  /** With `ipv4` addresses the checksum is filled. Returns bytes written. */
  encode(r: TcpRepr, buf: Uint8Array, offset = 0, ipv4?: { src: number; dst: number }): number {
    const n = tcpRepr.encodingLength(r);
    const hl = HEADER_LEN + (((r.options?.length ?? 0) + 3) & ~3);
    buf.fill(0, offset, offset + hl);
    setU16(buf, offset + SRC_PORT, r.srcPort);
    setU16(buf, offset + DST_PORT, r.dstPort);
    setU32(buf, offset + SEQ, r.seq ?? 0);
    setU32(buf, offset + ACK, r.ack ?? 0);
    buf[offset + DATA_OFF] = (hl >> 2) << 4;
    buf[offset + FLAGS] = r.flags;
    setU16(buf, offset + WINDOW, r.window ?? 65535);
    setU16(buf, offset + URGENT, r.urgent ?? 0);
    if (r.options) buf.set(r.options, offset + HEADER_LEN);
    if (r.payload) buf.set(r.payload, offset + hl);
    if (ipv4) new TcpPacket(buf, offset, n).fillChecksum4(ipv4.src, ipv4.dst);
    return n;
  },

  decode(buf: Uint8Array, offset = 0, length = buf.length - offset, ipv4?: { src: number; dst: number }): Parsed<TcpRepr> {
    const e = checkTcp(buf, offset, length);
    if (e !== ParseError.NONE) return fail(e, 'tcp');
    const v = new TcpPacket(buf, offset, length);
    if (ipv4 && !v.verifyChecksum4(ipv4.src, ipv4.dst)) return fail(ParseError.BAD_CHECKSUM, 'tcp.checksum');
    const r: TcpRepr = { srcPort: v.srcPort, dstPort: v.dstPort, seq: v.seq, ack: v.ack, flags: v.flags,
      window: v.window, urgent: v.urgent, checksum: v.checksum,
      payload: copyBytes(buf, v.payloadOffset, offset + length) };
    if (v.headerLength > HEADER_LEN) r.options = copyBytes(buf, offset + HEADER_LEN, v.payloadOffset);
    return ok(r);
  },
};

export function tcpFlagNames(f: number): string[] {
  const names = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'];
  return names.filter((_, i) => (f & (1 << i)) !== 0);
}
