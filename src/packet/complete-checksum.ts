/**
 * Finishing the TCP/UDP checksum of a CHECKSUM_PARTIAL packet a stage rewrote (engine.ts). Such a
 * packet (locally generated, or forwarded from a veth/virtio peer) carries only the pseudo-header
 * sum in its checksum field; the NIC was to finish it. A payload returned through NFQUEUE is marked
 * CHECKSUM_NONE by the kernel, so an incremental update on such a field would go out wrong: the
 * full checksum is computed instead. Reuses its header views (no allocation per packet).
 */
import type { Classified } from './classify';
import { PROTO_TCP, PROTO_UDP } from './ipv4';
import { TcpPacket } from './tcp';
import { UdpPacket } from './udp';

export class L4ChecksumCompleter {
  private readonly udp = new UdpPacket(new Uint8Array(0), 0, 0);
  private readonly tcp = new TcpPacket(new Uint8Array(0), 0, 0);

  /** info: the packet's classification (its offsets); b: its bytes, possibly rewritten since. IPv4 only. */
  complete(i: Classified, b: Uint8Array): void {
    if (i.ipVersion !== 4 || i.isFragment || i.reason !== 0) return;
    // Addresses from the bytes: a stage may have rewritten them after classification.
    const a = i.l3Offset;
    const src = ((b[a + 12]! << 24) | (b[a + 13]! << 16) | (b[a + 14]! << 8) | b[a + 15]!) >>> 0;
    const dst = ((b[a + 16]! << 24) | (b[a + 17]! << 16) | (b[a + 18]! << 8) | b[a + 19]!) >>> 0;
    if (i.proto === PROTO_UDP) this.udp.wrap(b, i.l4Offset, i.l4Length).fillChecksum4(src, dst);
    else if (i.proto === PROTO_TCP) this.tcp.wrap(b, i.l4Offset, i.l4Length).fillChecksum4(src, dst);
  }
}
