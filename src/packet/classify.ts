/**
 * One-pass classification of a packet, done once per packet by the engine, read by every stage.
 * Header reads only; no allocation (one Classified object is reused for every packet).
 *
 * CONTRACT (other modules code against these field names; keep them stable):
 * - After classify(bytes, offset, length): `reason` is 0 when the IP header (and the L4 header, when
 *   the packet is a first/only fragment) were valid, else a ParseError code and the later fields are
 *   only as far as parsing got.
 * - IPv4 addresses are unsigned 32-bit numbers (host order view of network bytes: 10.0.0.1 = 0x0a000001).
 */
import { ParseError } from './errors';

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

export class Classified {
  reason: ParseError = ParseError.NONE;
  ipVersion = 0;
  l3Offset = 0;
  l3HeaderLength = 0;
  /** IPv4 total length / IPv6 40 + payload length. */
  totalLength = 0;
  /** IP protocol; for IPv6 the upper-layer next header after extension headers. */
  proto = 0;
  src = 0;
  dst = 0;
  ttl = 0;
  /** True for IPv4 with MF set or a non-zero fragment offset. */
  isFragment = false;
  /** True for a non-first fragment: no L4 header in this packet. */
  isLaterFragment = false;
  l4Offset = 0;
  l4Length = 0;
  sport = 0;
  dport = 0;
  tcpFlags = 0;
  icmpType = -1;
  icmpCode = -1;
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
}
