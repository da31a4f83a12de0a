/**
 * ISAKMP / IKE message header (RFC 2408 for IKEv1, RFC 7296 for IKEv2; same 28-byte layout) and a
 * walk of the cleartext payload chain.
 *
 *                        1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 IKE SA Initiator's SPI (cookie)               |
 *   |                                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                 IKE SA Responder's SPI (cookie)               |
 *   |                                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                          Message ID                           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                            Length                             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Generic payload header (both versions; IKEv2 puts the Critical bit in the top bit of byte 1):
 *   | Next Payload  |C|  RESERVED   |         Payload Length        |
 *
 * The walk stops at an encrypted part: IKEv2's SK (46) / SKF (53) payload, whose header is cleartext
 * but whose "Next Payload" names the first payload *inside* the ciphertext; and IKEv1 with the E flag
 * (RFC 2408 3.1: "all payloads following the header are encrypted").
 */
import { u16, u32, setU16, setU32, toHex, fromHex, copyBytes } from './bytes';
import { ParseError, type Parsed, fail, ok } from './errors';
import { checkedView } from './view';

export const ISPI = 0;
export const RSPI = 8;
export const NEXT_PAYLOAD = 16;
export const VERSION = 17;
export const EXCHANGE = 18;
export const FLAGS = 19;
export const MESSAGE_ID = 20;
export const LENGTH = 24;
export const HEADER_LEN = 28;
export const PAYLOAD_HEADER_LEN = 4;

// IKEv2 flags (RFC 7296 3.1): |X|X|R|V|I|X|X|X|
export const FLAG_V2_INITIATOR = 0x08;
export const FLAG_V2_VERSION = 0x10;
export const FLAG_V2_RESPONSE = 0x20;
// IKEv1 flags (RFC 2408 3.1): E(ncryption), C(ommit), A(uthentication only)
export const FLAG_V1_ENCRYPTED = 0x01;
export const FLAG_V1_COMMIT = 0x02;
export const FLAG_V1_AUTH_ONLY = 0x04;

export const PAYLOAD_NONE = 0;
export const PAYLOAD_V2_SK = 46;
export const PAYLOAD_V2_SKF = 53;

export const EXCHANGE_NAMES: Readonly<Record<number, string>> = {
  // IKEv1 (RFC 2408 3.1, RFC 2409)
  1: 'Base', 2: 'Main Mode', 3: 'Authentication Only', 4: 'Aggressive Mode', 5: 'Informational',
  32: 'Quick Mode', 33: 'New Group Mode',
  // IKEv2 (RFC 7296 3.1, IANA)
  34: 'IKE_SA_INIT', 35: 'IKE_AUTH', 36: 'CREATE_CHILD_SA', 37: 'INFORMATIONAL',
  38: 'IKE_SESSION_RESUME', 39: 'GSA_AUTH', 40: 'GSA_REGISTRATION', 41: 'GSA_REKEY',
  43: 'IKE_INTERMEDIATE', 44: 'IKE_FOLLOWUP_KE',
};

export const PAYLOAD_NAMES_V1: Readonly<Record<number, string>> = {
  1: 'SA', 2: 'Proposal', 3: 'Transform', 4: 'KE', 5: 'ID', 6: 'CERT', 7: 'CR', 8: 'HASH', 9: 'SIG',
  10: 'Nonce', 11: 'Notification', 12: 'Delete', 13: 'VendorID', 20: 'NAT-D', 21: 'NAT-OA',
  130: 'NAT-D(draft)', 131: 'NAT-OA(draft)',
};

export const PAYLOAD_NAMES_V2: Readonly<Record<number, string>> = {
  33: 'SA', 34: 'KE', 35: 'IDi', 36: 'IDr', 37: 'CERT', 38: 'CERTREQ', 39: 'AUTH', 40: 'Nonce',
  41: 'Notify', 42: 'Delete', 43: 'VendorID', 44: 'TSi', 45: 'TSr', 46: 'SK', 47: 'CP', 48: 'EAP',
  49: 'GSPM', 53: 'SKF',
};

export function exchangeName(x: number): string {
  return EXCHANGE_NAMES[x] ?? `exchange-${x}`;
}

export function payloadName(version: number, t: number): string {
  if (t === PAYLOAD_NONE) return 'none';
  return (version === 1 ? PAYLOAD_NAMES_V1[t] : PAYLOAD_NAMES_V2[t]) ?? `payload-${t}`;
}

/**
 * Validates an IKE header at b[off] where `len` bytes are available (the UDP payload after any
 * non-ESP marker). The message's Length must fit; trailing bytes after it are tolerated.
 */
export function checkIke(b: Uint8Array, off: number, len: number): ParseError {
  if (len < HEADER_LEN || off < 0 || off + len > b.length) return ParseError.TRUNCATED;
  const major = b[off + VERSION]! >> 4;
  if (major !== 1 && major !== 2) return ParseError.BAD_VERSION;
  const ml = u32(b, off + LENGTH);
  if (ml < HEADER_LEN || ml > len) return ParseError.BAD_LENGTH;
  return ParseError.NONE;
}

export class IkeHeader extends checkedView(checkIke) {
  /** The 8-byte SPIs as two 32-bit halves (no bigint, no allocation). */
  get ispiHi(): number { return u32(this.bytes, this.offset + ISPI); }
  get ispiLo(): number { return u32(this.bytes, this.offset + ISPI + 4); }
  get rspiHi(): number { return u32(this.bytes, this.offset + RSPI); }
  get rspiLo(): number { return u32(this.bytes, this.offset + RSPI + 4); }
  get nextPayload(): number { return this.bytes[this.offset + NEXT_PAYLOAD]!; }
  get majorVersion(): number { return this.bytes[this.offset + VERSION]! >> 4; }
  get minorVersion(): number { return this.bytes[this.offset + VERSION]! & 0x0f; }
  get exchange(): number { return this.bytes[this.offset + EXCHANGE]!; }
  get flags(): number { return this.bytes[this.offset + FLAGS]!; }
  get messageId(): number { return u32(this.bytes, this.offset + MESSAGE_ID); }
  get messageLength(): number { return u32(this.bytes, this.offset + LENGTH); }
  get isInitiator(): boolean { return this.majorVersion === 2 && (this.flags & FLAG_V2_INITIATOR) !== 0; }
  get isResponse(): boolean { return this.majorVersion === 2 && (this.flags & FLAG_V2_RESPONSE) !== 0; }
  /** IKEv1 E flag, or an IKEv2 message whose first payload is SK/SKF. */
  get isEncrypted(): boolean {
    return this.majorVersion === 1 ? (this.flags & FLAG_V1_ENCRYPTED) !== 0
      : this.nextPayload === PAYLOAD_V2_SK || this.nextPayload === PAYLOAD_V2_SKF;
  }
  /** The responder SPI is all zero in a first IKE_SA_INIT / Main Mode message. */
  get rspiIsZero(): boolean { return this.rspiHi === 0 && this.rspiLo === 0; }
}

const EMPTY = new Uint8Array(0);

/**
 * Walks the cleartext payload chain without allocating:
 *   it.reset(bytes, ikeOffset, ikeLength); while (it.next()) { it.type, it.bodyOffset, ... }
 *   afterwards it.error (ParseError) and it.encrypted tell how the walk ended.
 * Terminates: every step advances by a payload length of at least 4 inside the message.
 */
export class IkePayloadIter {
  bytes: Uint8Array = EMPTY;
  version = 0;
  /** Type of the current payload and its place (header at `offset`, body after the 4-byte header). */
  type = 0;
  offset = 0;
  length = 0;
  critical = false;
  /** The next-payload field of the current payload (for SK: the first payload inside the ciphertext). */
  nextType = 0;
  /** NONE after a clean end (next payload 0 exactly at the message end). */
  error: ParseError = ParseError.NONE;
  /** The walk stopped at an encrypted part (IKEv1 E flag, or after yielding an SK/SKF payload). */
  encrypted = false;
  count = 0;
  private pos = 0;
  private end = 0;
  private pending = 0;

  /** Starts a walk; `length` bytes are available at `offset` (validated with checkIke here). */
  reset(bytes: Uint8Array, offset: number, length: number): this {
    this.bytes = bytes;
    this.type = 0; this.offset = 0; this.length = 0; this.critical = false; this.nextType = 0;
    this.encrypted = false; this.count = 0;
    this.error = checkIke(bytes, offset, length);
    if (this.error !== ParseError.NONE) { this.pending = 0; this.pos = this.end = 0; return this; }
    this.version = bytes[offset + VERSION]! >> 4;
    this.pos = offset + HEADER_LEN;
    this.end = offset + u32(bytes, offset + LENGTH);
    this.pending = bytes[offset + NEXT_PAYLOAD]!;
    if (this.version === 1 && (bytes[offset + FLAGS]! & FLAG_V1_ENCRYPTED) !== 0) {
      this.encrypted = true;
      this.pending = 0;
      this.pos = this.end;
    }
    return this;
  }

  get bodyOffset(): number { return this.offset + PAYLOAD_HEADER_LEN; }
  get bodyLength(): number { return this.length - PAYLOAD_HEADER_LEN; }

  next(): boolean {
    if (this.error !== ParseError.NONE || this.pending === PAYLOAD_NONE) {
      if (this.error === ParseError.NONE && !this.encrypted && this.pos !== this.end) this.error = ParseError.BAD_LENGTH;
      this.pending = PAYLOAD_NONE;
      return false;
    }
    const b = this.bytes, p = this.pos;
    if (this.end - p < PAYLOAD_HEADER_LEN) { this.error = ParseError.TRUNCATED; return false; }
    const pl = u16(b, p + 2);
    if (pl < PAYLOAD_HEADER_LEN || pl > this.end - p) { this.error = ParseError.BAD_LENGTH; return false; }
    this.type = this.pending;
    this.offset = p;
    this.length = pl;
    this.nextType = b[p]!;
    this.critical = this.version === 2 && (b[p + 1]! & 0x80) !== 0;
    this.pos = p + pl;
    this.count++;
    if (this.version === 2 && (this.type === PAYLOAD_V2_SK || this.type === PAYLOAD_V2_SKF)) {
      // RFC 7296 3.14: the Encrypted payload "MUST be the last payload in the message".
      this.encrypted = true;
      this.pending = PAYLOAD_NONE;
      if (this.pos !== this.end) this.error = ParseError.BAD_LENGTH;
      return true;
    }
    this.pending = this.nextType;
    return true;
  }
}

/** One payload of an IkeRepr: type and raw body (after the generic header). */
export interface IkePayloadRepr {
  type: number;
  body: Uint8Array;
  critical?: boolean;
  /** Overrides the written Next Payload (an SK payload names the first encrypted payload's type). */
  next?: number;
}

export interface IkeRepr {
  /** 8-byte SPIs as 16 hex digits. */
  ispi: string;
  rspi: string;
  /** Major version: 1 (ISAKMP / IKEv1) or 2. */
  version: number;
  minor?: number;
  exchange: number;
  flags: number;
  messageId: number;
  /** Cleartext payloads in chain order (for IKEv1 with the E flag: one opaque blob, type = next). */
  payloads: IkePayloadRepr[];
  /** IKEv1 encrypted messages: the header's Next Payload (the blob has no payload headers). */
  next?: number;
}

export const ikeRepr = {
  encodingLength(r: IkeRepr): number {
    if (r.version === 1 && (r.flags & FLAG_V1_ENCRYPTED)) return HEADER_LEN + (r.payloads[0]?.body.length ?? 0);
    let n = HEADER_LEN;
    for (const p of r.payloads) n += PAYLOAD_HEADER_LEN + p.body.length;
    return n;
  },

  encode(r: IkeRepr, buf: Uint8Array, offset = 0): number {
    const n = ikeRepr.encodingLength(r);
    const spiBytes = (s: string): Uint8Array => {
      const b = fromHex(s.padStart(16, '0'));
      if (!b || b.length !== 8) throw new Error(`IKE SPI must be 16 hex digits: ${s}`);
      return b;
    };
    buf.set(spiBytes(r.ispi), offset + ISPI);
    buf.set(spiBytes(r.rspi), offset + RSPI);
    buf[offset + VERSION] = (r.version << 4) | (r.minor ?? 0);
    buf[offset + EXCHANGE] = r.exchange;
    buf[offset + FLAGS] = r.flags;
    setU32(buf, offset + MESSAGE_ID, r.messageId);
    setU32(buf, offset + LENGTH, n);
    if (r.version === 1 && (r.flags & FLAG_V1_ENCRYPTED)) {
      buf[offset + NEXT_PAYLOAD] = r.next ?? 0;
      if (r.payloads[0]) buf.set(r.payloads[0].body, offset + HEADER_LEN);
      return n;
    }
    buf[offset + NEXT_PAYLOAD] = r.payloads[0]?.type ?? 0;
    let p = offset + HEADER_LEN;
    r.payloads.forEach((pl, i) => {
      buf[p] = pl.next ?? r.payloads[i + 1]?.type ?? 0;
      buf[p + 1] = pl.critical ? 0x80 : 0;
      setU16(buf, p + 2, PAYLOAD_HEADER_LEN + pl.body.length);
      buf.set(pl.body, p + PAYLOAD_HEADER_LEN);
      p += PAYLOAD_HEADER_LEN + pl.body.length;
    });
    return n;
  },

  decode(buf: Uint8Array, offset = 0, length = buf.length - offset): Parsed<IkeRepr> {
    const it = new IkePayloadIter().reset(buf, offset, length);
    if (it.error !== ParseError.NONE) return fail(it.error, 'ike');
    const h = new IkeHeader(buf, offset, length);
    const r: IkeRepr = {
      ispi: toHex(buf, offset + ISPI, 8), rspi: toHex(buf, offset + RSPI, 8), version: h.majorVersion,
      minor: h.minorVersion, exchange: h.exchange, flags: h.flags, messageId: h.messageId, payloads: [],
    };
    if (it.encrypted) {
      r.next = h.nextPayload;
      r.payloads.push({ type: h.nextPayload, body: copyBytes(buf, offset + HEADER_LEN, offset + h.messageLength) });
      return ok(r);
    }
    while (it.next()) {
      const p: IkePayloadRepr = { type: it.type, body: copyBytes(buf, it.bodyOffset, it.bodyOffset + it.bodyLength) };
      if (it.critical) p.critical = true;
      if (it.encrypted) p.next = it.nextType;
      r.payloads.push(p);
    }
    if (it.error !== ParseError.NONE) return fail(it.error, `ike.payload[${it.count}]`);
    return ok(r);
  },
};
