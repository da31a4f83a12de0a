/**
 * What TCP and UDP views share: the two ports at the same offsets, a checksum that covers them and
 * the IPv4 pseudo-header, and setters that keep that checksum right with RFC 1624 incremental
 * updates. UDP differs in one rule (RFC 768): a zero checksum means "none" and stays zero, and a
 * computed zero is sent as 0xffff (udpChecksumAdjust in checksum.ts).
 */
import { u16, setU16 } from './bytes';
import { checksumAdjust, checksumAdjust32, udpChecksumAdjust, udpChecksumAdjust32 } from './checksum';
import { checkedView, type Checker } from './view';

export const SRC_PORT = 0;
export const DST_PORT = 2;

/** The View base of a transport header whose checksum field is at `checksumAt`. */
export function transportView(check: Checker, checksumAt: number, zeroMeansNone: boolean) {
  const adjust = zeroMeansNone ? udpChecksumAdjust : checksumAdjust;
  const adjust32 = zeroMeansNone ? udpChecksumAdjust32 : checksumAdjust32;
  abstract class Transport extends checkedView(check) {
    get srcPort(): number { return u16(this.bytes, this.offset + SRC_PORT); }
    get dstPort(): number { return u16(this.bytes, this.offset + DST_PORT); }
    get checksum(): number { return u16(this.bytes, this.offset + checksumAt); }

    setSrcPort(port: number): void { this.setPort(SRC_PORT, port); }
    setDstPort(port: number): void { this.setPort(DST_PORT, port); }

    private setPort(field: number, v: number): void {
      const b = this.bytes, o = this.offset;
      const old = u16(b, o + field);
      setU16(b, o + field, v);
      setU16(b, o + checksumAt, adjust(u16(b, o + checksumAt), old, v & 0xffff));
    }

    /** Call after an IPv4 address in the pseudo-header changed from oldAddr to newAddr. */
    adjustForAddress(oldAddr: number, newAddr: number): void {
      const p = this.offset + checksumAt;
      setU16(this.bytes, p, adjust32(u16(this.bytes, p), oldAddr, newAddr >>> 0));
    }
  }
  return Transport;
}
