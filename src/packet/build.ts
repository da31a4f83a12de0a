/**
 * Whole-packet builders for tests, benches and tools (allocate freely; never on the hot path).
 * Each returns a complete IPv4 packet with correct header and L4 checksums.
 */
import { ipv4Repr, type Ipv4Repr, PROTO_UDP, PROTO_ESP } from './ipv4';
import { udpRepr } from './udp';
import { espRepr, type EspRepr } from './esp';
import { ikeRepr, type IkeRepr } from './ike';
import { dhcpRepr, type DhcpRepr } from './dhcp';

export type Ipv4Head = Omit<Ipv4Repr, 'payloadLength' | 'protocol'> & { protocol?: number };

/** IPv4 header + raw payload bytes (protocol taken from `h.protocol`). */
export function ipv4Raw(h: Ipv4Head & { protocol: number }, payload: Uint8Array): Uint8Array {
  const r: Ipv4Repr = { ...h, payloadLength: payload.length };
  const hl = ipv4Repr.encodingLength(r);
  const out = new Uint8Array(hl + payload.length);
  ipv4Repr.encode(r, out, 0);
  out.set(payload, hl);
  return out;
}

export interface UdpOpts { sport: number; dport: number; payload: Uint8Array; checksum?: boolean }

/** IPv4 + UDP; the UDP checksum is filled unless `checksum: false` (then it is 0, "none"). */
export function ipv4Udp(h: Ipv4Head, u: UdpOpts): Uint8Array {
  const ur = { srcPort: u.sport, dstPort: u.dport, payload: u.payload };
  const l4 = new Uint8Array(udpRepr.encodingLength(ur));
  udpRepr.encode(ur, l4, 0, u.checksum === false ? undefined : { src: h.src, dst: h.dst });
  return ipv4Raw({ ...h, protocol: PROTO_UDP }, l4);
}

export function ipv4Esp(h: Ipv4Head, e: EspRepr): Uint8Array {
  const l4 = new Uint8Array(espRepr.encodingLength(e));
  espRepr.encode(e, l4, 0);
  return ipv4Raw({ ...h, protocol: PROTO_ESP }, l4);
}

export function ikeBytes(r: IkeRepr): Uint8Array {
  const b = new Uint8Array(ikeRepr.encodingLength(r));
  ikeRepr.encode(r, b, 0);
  return b;
}

export function dhcpBytes(r: DhcpRepr, minLength?: number): Uint8Array {
  const b = new Uint8Array(dhcpRepr.encodingLength(r, minLength));
  dhcpRepr.encode(r, b, 0, minLength);
  return b;
}

/** Prepends the 4-byte non-ESP marker (RFC 3948 2.2) for IKE on port 4500. */
export function withNonEspMarker(ike: Uint8Array): Uint8Array {
  const b = new Uint8Array(4 + ike.length);
  b.set(ike, 4);
  return b;
}

/** Copies `pkt` into a larger buffer at `offset`, filling the rest with `fill` (for offset tests). */
export function embed(pkt: Uint8Array, offset: number, slack = 16, fill = 0xa5): Uint8Array {
  const b = new Uint8Array(offset + pkt.length + slack).fill(fill);
  b.set(pkt, offset);
  return b;
}
