/**
 * One-pass classification of a packet, done once per packet by the engine, read by every stage.
 * Header reads only; no allocation (one Classified object is reused for every packet).
 *
 * Flow: IP header (v4 with options / v6 with its extension-header chain) → fragment state → L4 header
 * (UDP, TCP, ICMP/ICMPv6, ESP) → by UDP port: 4500 (NAT-keepalive / non-ESP marker + IKE / ESP),
 * 500 (IKE), 67/68 (DHCP, with one bounded walk of the options for option 53).
 * Checksums are not verified here (the kernel has verified the IPv4 header before NFQUEUE; the
 * views offer verify*() for tools and tests).
 *
 * CONTRACT (other modules code against these field names; keep them stable):
 * - After classify(c, bytes, offset, length): `reason` is 0 when the IP header (and the L4 header, when
 *   the packet is a first/only fragment) were valid, else a ParseError code and the later fields are
 *   only as far as parsing got.
 * - `kind` names an application protocol only when its header was valid too; when the ports said
 *   IKE/DHCP/4500 but that header was bad, `kind` stays OTHER and `appReason` says why.
 * - IPv4 addresses are unsigned 32-bit numbers (host order view of network bytes: 10.0.0.1 = 0x0a000001).
 *   For IPv6, `src`/`dst` are 0; the 16 address bytes are at bytes[srcOffset] / bytes[dstOffset].
 */
import { ParseError } from './errors';
import { IpProto } from './ipv4';
import { DhcpOptionIter, dhcpMessageType, checkDhcp } from './dhcp';
import { isGenericExtension } from './ipv6';
import { HEADER_LEN as IKE_HEADER_LEN, LENGTH as IKE_LENGTH } from './ike';

export const enum Kind {
  OTHER = 0,
  /** IP protocol 50. */
  ESP = 1,
  /** UDP 4500 carrying ESP (first 4 payload bytes non-zero: the SPI). */
  ESP_IN_UDP = 2,
  /** UDP 500, or UDP 4500 after the 4-byte non-ESP marker. */
  IKE = 3,
  /** UDP 4500 with a single 0xff payload byte (RFC 3948). */
  NAT_KEEPALIVE = 4,
  /** UDP 67/68 with a BOOTP header and the DHCP magic cookie. */
  DHCP = 5,
}

export const KIND_NAMES: readonly string[] = ['other', 'esp', 'esp-in-udp', 'ike', 'nat-keepalive', 'dhcp'];

export class Classified {
  reason: ParseError = ParseError.NONE;
  /** Why the application header named by the ports (IKE, DHCP, UDP 4500 content) was not accepted. */
  appReason: ParseError = ParseError.NONE;
  ipVersion = 0;
  l3Offset = 0;
  l3HeaderLength = 0;
  /** IPv4 total length / IPv6 40 + payload length. */
  totalLength = 0;
  /** IP protocol; for IPv6 the upper-layer next header after extension headers. */
  proto = 0;
  src = 0;
  dst = 0;
  /** Offsets of the source / destination address bytes (4 for IPv4, 16 for IPv6). */
  srcOffset = 0;
  dstOffset = 0;
  /** TTL / IPv6 hop limit. */
  ttl = 0;
  /** True for IPv4 with MF set or a non-zero fragment offset (IPv6: a Fragment header). */
  isFragment = false;
  /** True for a non-first fragment: no L4 header in this packet. */
  isLaterFragment = false;
  /**
   * Only the first `length` bytes were captured (copy_range, GSO): the packet is longer on the wire.
   * Layers are read from the bytes present; l4Length and payloadLength count those bytes only.
   */
  truncated = false;
  l4Offset = 0;
  /** Bytes from l4Offset to the end of the IP packet (by total length, not the buffer). */
  l4Length = 0;
  sport = 0;
  dport = 0;
  /** TCP flags byte (FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 ECE 0x40 CWR 0x80). */
  tcpFlags = 0;
  icmpType = -1;
  icmpCode = -1;
  /** After the L4 header: UDP data, TCP segment data, ICMP body, ESP after SPI+seq. */
  payloadOffset = 0;
  payloadLength = 0;
  kind: Kind = Kind.OTHER;
  /** ESP / ESP-in-UDP: SPI and sequence number; espOffset points at the SPI. */
  espOffset = 0;
  espSpi = 0;
  espSeq = 0;
  /** IKE: offset of the IKE header (after the non-ESP marker on 4500) and its cleartext fields. */
  ikeOffset = 0;
  ikeIspiHi = 0;
  ikeIspiLo = 0;
  ikeRspiHi = 0;
  ikeRspiLo = 0;
  ikeNextPayload = 0;
  /** 1 for IKEv1/ISAKMP, 2 for IKEv2 (major version). */
  ikeVersion = 0;
  ikeExchange = 0;
  ikeFlags = 0;
  ikeMsgId = 0;
  ikeLength = 0;
  /** DHCP: offset of the BOOTP header, op, and option 53's value (0 when absent). */
  dhcpOffset = 0;
  dhcpOp = 0;
  dhcpMessageType = 0;
  /** DHCP: the BOOTP message length (UDP data length). */
  dhcpLength = 0;
}

const PORT_IKE = 500, PORT_NATT = 4500, PORT_DHCP_S = 67, PORT_DHCP_C = 68;

// One iterator for the option-53 scan; classify is not re-entrant across awaits (it never awaits).
const dhcpIter = new DhcpOptionIter();

function rd16(b: Uint8Array, o: number): number { return (b[o]! << 8) | b[o + 1]!; }
// 32-bit reads are written out inline below: a helper returning a uint32 above 2^30 must box it in
// a HeapNumber whenever V8 does not inline the call (it stops inlining once classify grows), which
// measured as ~4 bytes allocated per packet in the mix benchmark. Inline, the value stays in a
// register and lands in a double field in place.

function reset(c: Classified, off: number): void {
  c.reason = ParseError.NONE; c.appReason = ParseError.NONE;
  c.ipVersion = 0; c.l3Offset = off; c.l3HeaderLength = 0; c.totalLength = 0; c.proto = 0;
  c.src = 0; c.dst = 0; c.srcOffset = 0; c.dstOffset = 0; c.ttl = 0;
  c.isFragment = false; c.isLaterFragment = false; c.truncated = false; c.l4Offset = 0; c.l4Length = 0;
  c.sport = 0; c.dport = 0; c.tcpFlags = 0; c.icmpType = -1; c.icmpCode = -1;
  c.payloadOffset = 0; c.payloadLength = 0; c.kind = Kind.OTHER;
  c.espOffset = 0; c.espSpi = 0; c.espSeq = 0;
  c.ikeOffset = 0; c.ikeIspiHi = 0; c.ikeIspiLo = 0; c.ikeRspiHi = 0; c.ikeRspiLo = 0;
  c.ikeNextPayload = 0; c.ikeVersion = 0; c.ikeExchange = 0; c.ikeFlags = 0; c.ikeMsgId = 0; c.ikeLength = 0;
  c.dhcpOffset = 0; c.dhcpOp = 0; c.dhcpMessageType = 0; c.dhcpLength = 0;
}

/**
 * Classifies the IP packet at bytes[offset, offset + length) into `c` (overwriting every field).
 * `wireLength` > length says the source captured only the first `length` bytes of a longer packet:
 * a header length up to wireLength is then valid and `c.truncated` is set.
 */
export function classify(c: Classified, bytes: Uint8Array, offset: number, length: number, wireLength = length): void {
  reset(c, offset);
  if (length < 1 || offset < 0 || offset + length > bytes.length) { c.reason = ParseError.TRUNCATED; return; }
  const v = bytes[offset]! >> 4;
  c.ipVersion = v;
  if (v === 4) classify4(c, bytes, offset, length, wireLength);
  else if (v === 6) classify6(c, bytes, offset, length, wireLength);
  else c.reason = ParseError.BAD_VERSION;
}

function classify4(c: Classified, b: Uint8Array, o: number, len: number, wire: number): void {
  if (len < 20) { c.reason = ParseError.TRUNCATED; return; }
  const hl = (b[o]! & 0x0f) << 2;
  if (hl < 20) { c.reason = ParseError.BAD_HEADER_LENGTH; return; }
  if (hl > len) { c.reason = ParseError.TRUNCATED; return; }
  const tl = rd16(b, o + 2);
  c.l3HeaderLength = hl;
  c.totalLength = tl;
  if (tl < hl) { c.reason = ParseError.BAD_TOTAL_LENGTH; return; }
  if (tl > len) {
    if (tl > wire) { c.reason = ParseError.TRUNCATED; return; }
    c.truncated = true;
  }
  const end = tl > len ? len : tl;
  c.ttl = b[o + 8]!;
  c.proto = b[o + 9]!;
  c.srcOffset = o + 12;
  c.dstOffset = o + 16;
  c.src = (((b[o + 12]! << 24) | (b[o + 12 + 1]! << 16) | (b[o + 12 + 2]! << 8) | b[o + 12 + 3]!) >>> 0);
  c.dst = (((b[o + 16]! << 24) | (b[o + 16 + 1]! << 16) | (b[o + 16 + 2]! << 8) | b[o + 16 + 3]!) >>> 0);
  const fo = rd16(b, o + 6);
  c.isFragment = (fo & 0x3fff) !== 0;
  c.isLaterFragment = (fo & 0x1fff) !== 0;
  c.l4Offset = o + hl;
  c.l4Length = end - hl;
  if (c.isLaterFragment) return;
  classifyL4(c, b, o + hl, end - hl);
}

function classify6(c: Classified, b: Uint8Array, o: number, len: number, wire: number): void {
  if (len < 40) { c.reason = ParseError.TRUNCATED; return; }
  const pl = rd16(b, o + 4);
  c.l3HeaderLength = 40;
  c.totalLength = 40 + pl;
  // Payload Length 0 with Hop-by-Hop is a jumbogram (RFC 2675): not something a gateway queue carries.
  if (pl === 0 && b[o + 6] === 0) { c.reason = ParseError.UNSUPPORTED; return; }
  if (40 + pl > len) {
    if (40 + pl > wire) { c.reason = ParseError.TRUNCATED; return; }
    c.truncated = true;
  }
  c.ttl = b[o + 7]!;
  c.srcOffset = o + 8;
  c.dstOffset = o + 24;
  const end = o + (40 + pl > len ? len : 40 + pl);
  let nh = b[o + 6]!;
  let p = o + 40;
  // Bounded: every extension header moves p forward by at least 8 bytes, and p must stay < end.
  for (;;) {
    if (isGenericExtension(nh)) {
      if (p + 8 > end) { c.reason = ParseError.TRUNCATED; return; }
      const n = (b[p + 1]! + 1) << 3;
      if (p + n > end) { c.reason = ParseError.BAD_LENGTH; return; }
      nh = b[p]!;
      p += n;
    } else if (nh === 44) { // Fragment header, 8 bytes, RFC 8200 4.5
      if (p + 8 > end) { c.reason = ParseError.TRUNCATED; return; }
      c.isFragment = true;
      if ((rd16(b, p + 2) & 0xfff8) !== 0) c.isLaterFragment = true;
      nh = b[p]!;
      p += 8;
    } else {
      break;
    }
  }
  c.proto = nh;
  c.l3HeaderLength = p - o;
  c.l4Offset = p;
  c.l4Length = end - p;
  if (c.isLaterFragment || nh === 59) return; // 59: No Next Header
  classifyL4(c, b, p, end - p);
}

function classifyL4(c: Classified, b: Uint8Array, o: number, len: number): void {
  switch (c.proto) {
    case IpProto.UDP: return classifyUdp(c, b, o, len);
    case IpProto.TCP: {
      if (len < 20) { c.reason = ParseError.TRUNCATED; return; }
      const doff = (b[o + 12]! >> 4) << 2;
      if (doff < 20) { c.reason = ParseError.BAD_HEADER_LENGTH; return; }
      if (doff > len) { c.reason = c.truncated ? ParseError.TRUNCATED : ParseError.BAD_HEADER_LENGTH; return; }
      c.sport = rd16(b, o);
      c.dport = rd16(b, o + 2);
      c.tcpFlags = b[o + 13]!;
      c.payloadOffset = o + doff;
      c.payloadLength = len - doff;
      return;
    }
    case IpProto.ICMP:
    case IpProto.ICMPV6:
      if (len < 8) { c.reason = ParseError.TRUNCATED; return; }
      c.icmpType = b[o]!;
      c.icmpCode = b[o + 1]!;
      c.payloadOffset = o + 8;
      c.payloadLength = len - 8;
      return;
    case IpProto.ESP:
      if (len < 8) { c.reason = ParseError.TRUNCATED; return; }
      c.espSpi = (((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0);
      c.espSeq = (((b[o + 4]! << 24) | (b[o + 4 + 1]! << 16) | (b[o + 4 + 2]! << 8) | b[o + 4 + 3]!) >>> 0);
      c.espOffset = o;
      c.payloadOffset = o + 8;
      c.payloadLength = len - 8;
      // RFC 4303 2.1: SPI 0 "MUST NOT be sent on the wire".
      if (c.espSpi === 0) { c.reason = ParseError.BAD_SPI; return; }
      c.kind = Kind.ESP;
      return;
    default:
      return;
  }
}

function classifyUdp(c: Classified, b: Uint8Array, o: number, len: number): void {
  if (len < 8) { c.reason = ParseError.TRUNCATED; return; }
  const ul = rd16(b, o + 4);
  // A first fragment carries only part of the datagram, so its UDP Length may exceed what is here.
  // Likewise a truncated packet (copy_range) carries only the start of it.
  if (ul < 8 || (ul > len && !c.isFragment && !c.truncated)) { c.reason = ParseError.BAD_LENGTH; return; }
  const sp = rd16(b, o), dp = rd16(b, o + 2);
  c.sport = sp;
  c.dport = dp;
  const po = o + 8;
  // Bytes of UDP data present in this packet, and the datagram's declared data length.
  const have = (ul > len ? len : ul) - 8;
  const declared = ul - 8;
  c.payloadOffset = po;
  c.payloadLength = have;
  if (sp === PORT_NATT || dp === PORT_NATT) {
    if (have === 1 && declared === 1) {
      if (b[po] === 0xff) c.kind = Kind.NAT_KEEPALIVE; else c.appReason = ParseError.BAD_VALUE;
      return;
    }
    if (have < 4) { c.appReason = ParseError.TRUNCATED; return; }
    if ((((b[po]! << 24) | (b[po + 1]! << 16) | (b[po + 2]! << 8) | b[po + 3]!) >>> 0) === 0) { ike(c, b, po + 4, have - 4, declared - 4); return; }
    if (have < 8) { c.appReason = ParseError.TRUNCATED; return; }
    c.espOffset = po;
    c.espSpi = (((b[po]! << 24) | (b[po + 1]! << 16) | (b[po + 2]! << 8) | b[po + 3]!) >>> 0);
    c.espSeq = (((b[po + 4]! << 24) | (b[po + 4 + 1]! << 16) | (b[po + 4 + 2]! << 8) | b[po + 4 + 3]!) >>> 0);
    c.kind = Kind.ESP_IN_UDP;
    return;
  }
  if (sp === PORT_IKE || dp === PORT_IKE) { ike(c, b, po, have, declared); return; }
  if (sp === PORT_DHCP_S || dp === PORT_DHCP_S || sp === PORT_DHCP_C || dp === PORT_DHCP_C) {
    if (have !== declared) { c.appReason = ParseError.UNSUPPORTED; return; } // fragmented DHCP
    const e = checkDhcp(b, po, have);
    if (e !== ParseError.NONE) { c.appReason = e; return; }
    const mt = dhcpMessageType(dhcpIter, b, po, have);
    if (mt < 0) { c.appReason = -mt; return; }
    c.kind = Kind.DHCP;
    c.dhcpOffset = po;
    c.dhcpOp = b[po]!;
    c.dhcpMessageType = mt;
    c.dhcpLength = have;
  }
}

/** IKE header at b[o]: `have` bytes present, `declared` bytes in the (possibly fragmented) datagram.
 * Same rules as ike.checkIke, with the Length checked against the declared size so that the first
 * fragment of a large IKE_AUTH still classifies as IKE. */
function ike(c: Classified, b: Uint8Array, o: number, have: number, declared: number): void {
  if (have < IKE_HEADER_LEN) { c.appReason = ParseError.TRUNCATED; return; }
  const major = b[o + 17]! >> 4;
  if (major !== 1 && major !== 2) { c.appReason = ParseError.BAD_VERSION; return; }
  const ml = (((b[o + IKE_LENGTH]! << 24) | (b[o + IKE_LENGTH + 1]! << 16) | (b[o + IKE_LENGTH + 2]! << 8) | b[o + IKE_LENGTH + 3]!) >>> 0);
  if (ml < IKE_HEADER_LEN || ml > declared) { c.appReason = ParseError.BAD_LENGTH; return; }
  c.ikeOffset = o;
  c.ikeIspiHi = (((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0);
  c.ikeIspiLo = (((b[o + 4]! << 24) | (b[o + 4 + 1]! << 16) | (b[o + 4 + 2]! << 8) | b[o + 4 + 3]!) >>> 0);
  c.ikeRspiHi = (((b[o + 8]! << 24) | (b[o + 8 + 1]! << 16) | (b[o + 8 + 2]! << 8) | b[o + 8 + 3]!) >>> 0);
  c.ikeRspiLo = (((b[o + 12]! << 24) | (b[o + 12 + 1]! << 16) | (b[o + 12 + 2]! << 8) | b[o + 12 + 3]!) >>> 0);
  c.ikeNextPayload = b[o + 16]!;
  c.ikeVersion = major;
  c.ikeExchange = b[o + 18]!;
  c.ikeFlags = b[o + 19]!;
  c.ikeMsgId = (((b[o + 20]! << 24) | (b[o + 20 + 1]! << 16) | (b[o + 20 + 2]! << 8) | b[o + 20 + 3]!) >>> 0);
  c.ikeLength = ml;
  c.kind = Kind.IKE;
}
