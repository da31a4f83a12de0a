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
import { u16, u32, setU16, setU32 } from './bytes';
import { checksumAdjust, checksumAdjust32, udpChecksumAdjust, udpChecksumAdjust32 } from './checksum';
import type { Classified } from './classify';
import { ParseError } from './errors';
import { PROTO_TCP, PROTO_UDP } from './ipv4';

const IP_CSUM = 10, TCP_CSUM = 16, UDP_CSUM = 6;

function l4Fix32(c: Classified, b: Uint8Array, oldV: number, newV: number): void {
  if (c.isLaterFragment) return;
  const o = c.l4Offset;
  if (c.proto === PROTO_TCP) setU16(b, o + TCP_CSUM, checksumAdjust32(u16(b, o + TCP_CSUM), oldV, newV));
  else if (c.proto === PROTO_UDP) setU16(b, o + UDP_CSUM, udpChecksumAdjust32(u16(b, o + UDP_CSUM), oldV, newV));
}

function setAddr(c: Classified, b: Uint8Array, field: number, addr: number): boolean {
  if (c.reason !== ParseError.NONE || c.ipVersion !== 4) return false;
  const a = addr >>> 0;
  const p = c.l3Offset + field;
  const old = u32(b, p);
  if (old === a) return true;
  setU32(b, p, a);
  setU16(b, c.l3Offset + IP_CSUM, checksumAdjust32(u16(b, c.l3Offset + IP_CSUM), old, a));
  l4Fix32(c, b, old, a);
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
  if (c.proto === PROTO_TCP) {
    setU16(b, o + field, v);
    setU16(b, o + TCP_CSUM, checksumAdjust(u16(b, o + TCP_CSUM), old, v));
  } else if (c.proto === PROTO_UDP) {
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
