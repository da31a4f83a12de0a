/**
 * The packet layer's public face. Flow: the engine calls classify() once per packet (header reads,
 * no allocation); stages read the Classified fields and, to change bytes, use a reusable view
 * (Ipv4Packet, UdpPacket, ...) or the NAT helpers in rewrite.ts, which keep checksums right
 * incrementally. Reprs (ipv4Repr, udpRepr, ikeRepr, dhcpRepr, ...) build and parse packets for
 * tests and tools; describe/pcap serve `sluice decode`.
 */
export { Classified, classify, Kind, KIND_NAMES } from './classify';
export { ParseError, PARSE_ERROR_NAMES, parseErrorName, type Parsed } from './errors';
export * as checksum from './checksum';
export * as ipv4 from './ipv4';
export * as ipv6 from './ipv6';
export * as udp from './udp';
export * as tcp from './tcp';
export * as icmp from './icmp';
export * as esp from './esp';
export * as ike from './ike';
export * as dhcp from './dhcp';
export * as dhcpOptions from './dhcp-options';
export * as rewrite from './rewrite';
export * as bytes from './bytes';
