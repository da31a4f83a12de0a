/**
 * In-place NAT rewrites of a classified IPv4 packet, keeping every checksum right with RFC 1624
 * incremental updates (a few additions, independent of the packet size):
 *   address → IPv4 header checksum, and the TCP/UDP checksum through the pseudo-header
 *             (only in a first/only fragment: later fragments carry no L4 header);
 *   port    → TCP/UDP checksum.
 * A UDP checksum of zero stays zero (RFC 768: "An all zero transmitted checksum value means that the
 * transmitter generated no checksum"). ESP has no checksum outside its keyed ICV, and ICMPv4's
 * checksum has no pseudo-header, so address rewrites leave both alone.
 *
 * Each function takes the packet's Classified (from classify(), reason NONE), refuses anything else
 * by returning false, and updates the Classified fields it changed so later stages see the new values.
 */
import { u16, setU16 } from './bytes';
import { checksumAdjust, checksumAdjust32, udpChecksumAdjust, udpChecksumAdjust32 } from './checksum';
import type { Classified } from './classify';
import { ParseError } from './errors';
import { IpProto } from './ipv4';

const IP_CSUM = 10, TCP_CSUM = 16, UDP_CSUM = 6;

function setAddr(c: Classified, b: Uint8Array, field: number, addr: number): boolean {
  if (c.reason !== ParseError.NONE || c.ipVersion !== 4) return false;
  // int32 throughout (addresses ≥ 2^31 included): a uint32 returned from a helper that V8 does not
  // inline is boxed in a HeapNumber, one allocation per rewritten packet.
  const a = addr | 0;
  const p = c.l3Offset + field;
  const old = (b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!;
  if (old === a) return true;
  b[p] = a >>> 24; b[p + 1] = (a >>> 16) & 255; b[p + 2] = (a >>> 8) & 255; b[p + 3] = a & 255;
  const ic = c.l3Offset + IP_CSUM;
  const hc = checksumAdjust32((b[ic]! << 8) | b[ic + 1]!, old, a);
  b[ic] = hc >>> 8; b[ic + 1] = hc & 255;
  if (!c.isLaterFragment) {
    const proto = c.proto;
    if (proto === IpProto.UDP) {
      const uc = c.l4Offset + UDP_CSUM;
      const u = udpChecksumAdjust32((b[uc]! << 8) | b[uc + 1]!, old, a);
      b[uc] = u >>> 8; b[uc + 1] = u & 255;
    } else if (proto === IpProto.TCP) {
      const tc = c.l4Offset + TCP_CSUM;
      const t = checksumAdjust32((b[tc]! << 8) | b[tc + 1]!, old, a);
      b[tc] = t >>> 8; b[tc + 1] = t & 255;
    }
  }
  return true;
}

/** Rewrites the IPv4 source address (SNAT). */
export function rewriteSrc4(c: Classified, b: Uint8Array, addr: number): boolean {
  if (!setAddr(c, b, 12, addr)) return false;
  c.src = addr >>> 0;
  return true;
}

/** Rewrites the IPv4 destination address (DNAT). */
export function rewriteDst4(c: Classified, b: Uint8Array, addr: number): boolean {
  if (!setAddr(c, b, 16, addr)) return false;
  c.dst = addr >>> 0;
  return true;
}

function setPort(c: Classified, b: Uint8Array, field: number, port: number): boolean {
  if (c.reason !== ParseError.NONE || c.isLaterFragment) return false;
  const o = c.l4Offset;
  const old = u16(b, o + field);
  const v = port & 0xffff;
  if (c.proto === IpProto.TCP) {
    setU16(b, o + field, v);
    setU16(b, o + TCP_CSUM, checksumAdjust(u16(b, o + TCP_CSUM), old, v));
  } else if (c.proto === IpProto.UDP) {
    setU16(b, o + field, v);
    setU16(b, o + UDP_CSUM, udpChecksumAdjust(u16(b, o + UDP_CSUM), old, v));
  } else {
    return false;
  }
  return true;
}

export function rewriteSport(c: Classified, b: Uint8Array, port: number): boolean {
  if (!setPort(c, b, 0, port)) return false;
  c.sport = port & 0xffff;
  return true;
}

export function rewriteDport(c: Classified, b: Uint8Array, port: number): boolean {
  if (!setPort(c, b, 2, port)) return false;
  c.dport = port & 0xffff;
  return true;
}
