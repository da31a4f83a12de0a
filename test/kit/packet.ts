/**
 * Test helpers: the lab captures in test/captures (see its README for how each was made), as IP
 * packets with the link layer stripped.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readCapture, stripLink } from '../../src/packet/pcap';
import { copyBytes } from '../../src/packet/bytes';

/** test/captures, from dist/test/kit (compiled) or test/kit (ts-node style). */
export const CAPTURES = resolve(__dirname, __dirname.includes('/dist/') ? '../../../test/captures' : '../captures');

export interface CapturedPacket { n: number; ip: Uint8Array }

/** The IP packets of a capture (copied, so tests may mutate them). */
export function capturedPackets(name: string): CapturedPacket[] {
  const out: CapturedPacket[] = [];
  for (const r of readCapture(readFileSync(join(CAPTURES, name)))) {
    const li = stripLink(r.linktype, r.data);
    if (li.error) throw new Error(`${name} #${r.index + 1}: ${li.error}`);
    out.push({ n: r.index + 1, ip: copyBytes(r.data, li.ipOffset, r.data.length) });
  }
  return out;
}

/** UDP payload of an IPv4 packet without options checks (captures are known-good). */
export function udpPayload(ip: Uint8Array): Uint8Array {
  const hl = (ip[0]! & 15) * 4;
  return ip.subarray(hl + 8, ((ip[2]! << 8) | ip[3]!));
}
