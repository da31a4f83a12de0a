/**
 * Address rewrites with incremental checksum updates (RFC 1624).
 *
 * RFC 1624 §3, eqn. 3: "HC' = ~(~HC + ~m + m')" — using ~m + m' instead of subtracting m avoids the
 * -0 / +0 ambiguity of eqn. 2. A 32-bit address is two 16-bit words m.
 *
 * RFC 768: "If the computed checksum is zero, it is transmitted as all ones ... An all zero
 * transmitted checksum value means that the transmitter generated no checksum": a zero UDP checksum
 * stays zero (ESP-in-UDP senders commonly send zero, RFC 3948 §2.1), and an update that lands on
 * zero is sent as 0xffff.
 */

import { checksumAdjust32 } from '../packet/checksum';

/** New checksum field value after a 32-bit word of the covered data changed from oldW to newW. */
export const csumUpdate32 = checksumAdjust32;

const IPV4_CHECK = 10;
const IPV4_SRC = 12;
const IPV4_DST = 16;
const UDP_CHECK = 6;
const PROTO_UDP = 17;

function rd32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = (v >>> 16) & 255; b[o + 2] = (v >>> 8) & 255; b[o + 3] = v & 255;
}

/**
 * Replaces the IPv4 source (which = IPV4_SRC) or destination (IPV4_DST) address at l3 and fixes the
 * header checksum and, for UDP with a transport header in this packet (l4 >= 0), the UDP checksum,
 * whose pseudo-header covers both addresses.
 */
function rewriteAddr(b: Uint8Array, l3: number, which: number, addr: number, proto: number, l4: number): void {
  const old = rd32(b, l3 + which);
  if (old === addr) return;
  wr32(b, l3 + which, addr);
  const hc = (b[l3 + IPV4_CHECK] << 8) | b[l3 + IPV4_CHECK + 1];
  const nh = csumUpdate32(hc, old, addr);
  b[l3 + IPV4_CHECK] = nh >>> 8; b[l3 + IPV4_CHECK + 1] = nh & 255;
  if (proto === PROTO_UDP && l4 >= 0) {
    const uc = (b[l4 + UDP_CHECK] << 8) | b[l4 + UDP_CHECK + 1];
    if (uc === 0) return;
    let nu = csumUpdate32(uc, old, addr);
    if (nu === 0) nu = 0xffff;
    b[l4 + UDP_CHECK] = nu >>> 8; b[l4 + UDP_CHECK + 1] = nu & 255;
  }
}

export function rewriteSource(b: Uint8Array, l3: number, addr: number, proto: number, l4: number): void {
  rewriteAddr(b, l3, IPV4_SRC, addr, proto, l4);
}

export function rewriteDestination(b: Uint8Array, l3: number, addr: number, proto: number, l4: number): void {
  rewriteAddr(b, l3, IPV4_DST, addr, proto, l4);
}
