/**
 * The IPv4 + UDP envelope around a DHCP message built in place. Replies and relayed requests are
 * written at out[28..] first; then the 28 header bytes in front are filled with correct checksums.
 * Reuses one view of each kind: nothing allocated per packet.
 */
import { setU16, setU32 } from '../packet/bytes';
import { Ipv4Packet, PROTO_UDP, HEADER_LEN as IP_HLEN } from '../packet/ipv4';
import { UdpPacket, HEADER_LEN as UDP_HLEN } from '../packet/udp';

/** Where the DHCP message starts inside an envelope buffer. */
export const DHCP_AT = IP_HLEN + UDP_HLEN;

const ipView = new Ipv4Packet();
const udpView = new UdpPacket();

/** Fills out[0..28) for a DHCP message of dhcpLen bytes at out[28]; returns the IP packet length. */
export function sealIpUdp(out: Uint8Array, src: number, dst: number, sport: number, dport: number, dhcpLen: number, ttl = 64): number {
  const total = DHCP_AT + dhcpLen;
  out[0] = 0x45; out[1] = 0;
  setU16(out, 2, total);
  setU16(out, 4, 0);
  setU16(out, 6, 0);
  out[8] = ttl; out[9] = PROTO_UDP;
  setU16(out, 10, 0);
  setU32(out, 12, src);
  setU32(out, 16, dst);
  ipView.wrap(out, 0, total).fillChecksum();
  setU16(out, IP_HLEN, sport);
  setU16(out, IP_HLEN + 2, dport);
  setU16(out, IP_HLEN + 4, UDP_HLEN + dhcpLen);
  setU16(out, IP_HLEN + 6, 0);
  udpView.wrap(out, IP_HLEN, UDP_HLEN + dhcpLen).fillChecksum4(src, dst);
  return total;
}

/**
 * Writes option `code` with value v[vOff, vOff+len) at out[p], split into instances of at most 255
 * bytes (RFC 3396 5: "the agent ... MUST split the option into multiple smaller options"). Returns
 * the position after it.
 */
export function putOption(out: Uint8Array, p: number, code: number, v: Uint8Array, vOff: number, len: number): number {
  let at = 0;
  do {
    const l = len - at > 255 ? 255 : len - at;
    out[p] = code;
    out[p + 1] = l;
    for (let i = 0; i < l; i++) out[p + 2 + i] = v[vOff + at + i]!; // a loop: no subarray object
    p += 2 + l;
    at += l;
  } while (at < len);
  return p;
}
