/**
 * ESP (RFC 4303) header and ESP-in-UDP (RFC 3948) demultiplexing on port 4500.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |               Security Parameters Index (SPI)                 |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                      Sequence Number                          |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Payload Data* (variable)                   |
 *   ~   (encrypted: IV, inner packet, padding, pad length, next       ~
 *   |    header, ICV — opaque to sluice)                            |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * On UDP 4500 three things share the port (RFC 3948, 2.2 and 2.3):
 *   - NAT-keepalive: "The sender MUST use a one-octet-long payload with the value 0xFF."
 *   - IKE: preceded by the 4-octet non-ESP marker, "Non-ESP Marker: 32 bits of zero".
 *   - ESP: the first 4 octets are the (never zero) SPI.
 */
import { u32, setU32, copyBytes } from './bytes';
import { ParseError, type Parsed, fail, ok } from './errors';
import { checkedView } from './view';

export const SPI = 0;
export const SEQ = 4;
export const HEADER_LEN = 8;
export const NON_ESP_MARKER_LEN = 4;
export const NAT_KEEPALIVE_BYTE = 0xff;
export const PORT_IKE = 500;
export const PORT_NATT = 4500;

export function checkEsp(b: Uint8Array, off: number, len: number): ParseError {
  if (len < HEADER_LEN || off < 0 || off + len > b.length) return ParseError.TRUNCATED;
  // RFC 4303 2.1: "The SPI value of zero (0) is reserved for local, implementation-specific use and
  // MUST NOT be sent on the wire."
  if (u32(b, off + SPI) === 0) return ParseError.BAD_SPI;
  return ParseError.NONE;
}

export class EspPacket extends checkedView(checkEsp) {
  get spi(): number { return u32(this.bytes, this.offset + SPI); }
  get seq(): number { return u32(this.bytes, this.offset + SEQ); }
  get payloadOffset(): number { return this.offset + HEADER_LEN; }
  get payloadLength(): number { return this.length - HEADER_LEN; }
  /** ESP has no checksum of its own (the ICV is keyed); an SPI rewrite needs no fix-up here. */
  setSpi(spi: number): void { setU32(this.bytes, this.offset + SPI, spi); }
}


/** What a UDP 4500 payload holds. */
export const enum NattKind {
  /** Shorter than an ESP header, no marker, not a keepalive: not valid on 4500. */
  INVALID = 0,
  ESP = 1,
  /** Non-ESP marker followed by (what should be) an IKE header at payload + 4. */
  IKE = 2,
  KEEPALIVE = 3,
}

/** Tells the three users of UDP 4500 apart from the UDP payload (header reads only). */
export function nattKind(b: Uint8Array, payloadOff: number, payloadLen: number): NattKind {
  if (payloadLen === 1) return b[payloadOff] === NAT_KEEPALIVE_BYTE ? NattKind.KEEPALIVE : NattKind.INVALID;
  if (payloadLen < NON_ESP_MARKER_LEN) return NattKind.INVALID;
  if (u32(b, payloadOff) === 0) return NattKind.IKE;
  return payloadLen >= HEADER_LEN ? NattKind.ESP : NattKind.INVALID;
}

export interface EspRepr {
  spi: number;
  seq: number;
  /** Everything after the sequence number (IV, ciphertext, ICV), opaque. */
  payload: Uint8Array;
}

export const espRepr = {
  encodingLength(r: EspRepr): number { return HEADER_LEN + r.payload.length; },

  encode(r: EspRepr, buf: Uint8Array, offset = 0): number {
    setU32(buf, offset + SPI, r.spi);
    setU32(buf, offset + SEQ, r.seq);
    buf.set(r.payload, offset + HEADER_LEN);
    return espRepr.encodingLength(r);
  },

  decode(buf: Uint8Array, offset = 0, length = buf.length - offset): Parsed<EspRepr> {
    const e = checkEsp(buf, offset, length);
    if (e !== ParseError.NONE) return fail(e, 'esp');
    return ok({ spi: u32(buf, offset), seq: u32(buf, offset + SEQ), payload: copyBytes(buf, offset + HEADER_LEN, offset + length) });
  },
};
