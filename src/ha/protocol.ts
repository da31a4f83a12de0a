/**
 * The replication wire format: length-prefixed frames over TCP, each authenticated with
 * HMAC-SHA256 and numbered, so a forged, replayed, reordered or truncated message is refused.
 *
 *   u32 length (of what follows) | u8 type | u8 version | u16 0 | u32 seq hi | u32 seq lo | payload | mac[32]
 *
 * The mac covers a direction byte, type, version, seq and payload. HELLO and HELLO_REPLY are keyed
 * with the shared key itself; every later frame with a session key per direction derived from both
 * sides' fresh nonces (HMAC(key, label | nonce_active | nonce_standby)). A frame recorded in one
 * session therefore fails the mac in any other, and within a session the sequence number must be
 * exactly the last one plus one. Every refusal is counted by reason and ends the connection: a
 * stream that lost one message cannot be trusted to be complete.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const VERSION = 1;
export const HEADER = 16;
export const MAC = 32;
export const NONCE = 16;
/** Largest frame accepted (payload + header + mac); a sender splits record batches well below it. */
export const MAX_FRAME = 1 << 20;

export const enum T {
  /** active → standby: nonce. */
  HELLO = 1,
  /** standby → active: nonce, echo of the active's nonce. */
  HELLO_REPLY = 2,
  /** A full resync starts: every record follows, then SNAP_END; the standby removes what was not named. */
  SNAP_BEGIN = 3,
  /** Journal lines (`P ...` / `D ...`, newline-terminated), in the order the changes happened. */
  RECORDS = 4,
  SNAP_END = 5,
  /** active → standby: f64 send time (active's clock), f64 records sent so far. */
  HEARTBEAT = 6,
  /** standby → active: f64 records applied, f64 echoed heartbeat time (0 when not answering one). */
  ACK = 7,
}

export const REJECT_REASONS = [
  /** The mac does not match: wrong key, forged or altered, or a frame from another session. */
  'bad_mac',
  /** A sequence number already seen in this session (a replayed message). */
  'replay',
  /** A sequence number that skips ahead (a message was removed). */
  'out_of_order',
  /** Too short, an unknown version or type, or a payload of the wrong shape. */
  'malformed',
  /** A length above MAX_FRAME. */
  'too_long',
  /** A valid message where the protocol does not allow it (e.g. records before a session). */
  'unexpected',
  /** A journal line the replay validation refuses (after a valid mac: a bug or a version mismatch). */
  'bad_record',
  /** The handshake echoed a nonce that is not this connection's (a replayed HELLO_REPLY). */
  'bad_nonce',
  /** A stream offered to a node that is active (it takes no records; split brain is logged). */
  'not_standby',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export class ProtocolError extends Error {
  constructor(readonly reason: RejectReason, msg: string) { super(msg); }
}

export const DIR_ACTIVE = 0x41; // 'A': active → standby
export const DIR_STANDBY = 0x53; // 'S': standby → active

export interface SessionKeys { toStandby: Buffer; toActive: Buffer }

export function deriveKeys(key: Buffer, nonceActive: Buffer, nonceStandby: Buffer): SessionKeys {
  const k = (label: string) => createHmac('sha256', key).update(label).update(nonceActive).update(nonceStandby).digest();
  return { toStandby: k('sluice-ha a->s'), toActive: k('sluice-ha s->a') };
}

export function nonce(): Buffer { return randomBytes(NONCE); }

function mac(key: Buffer, dir: number, frame: Buffer, end: number): Buffer {
  return createHmac('sha256', key).update(Buffer.of(dir)).update(frame.subarray(4, end)).digest();
}

/** One frame, ready to write. */
export function encode(key: Buffer, dir: number, type: T, seq: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const len = HEADER + payload.length + MAC;
  if (len > MAX_FRAME) throw new RangeError(`frame of ${len} bytes exceeds ${MAX_FRAME}`);
  const f = Buffer.allocUnsafe(len);
  f.writeUInt32BE(len - 4, 0);
  f[4] = type; f[5] = VERSION; f.writeUInt16BE(0, 6);
  f.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 8);
  f.writeUInt32BE(seq >>> 0, 12);
  payload.copy(f, HEADER);
  mac(key, dir, f, HEADER + payload.length).copy(f, HEADER + payload.length);
  return f;
}

export interface Frame { type: T; seq: number; payload: Buffer }

/**
 * Splits a byte stream into frames and checks each: call push() with what the socket delivered,
 * then next() until it returns null. The key and the expected sequence number are the caller's
 * (they change at the handshake); next() throws ProtocolError on the first bad frame.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Next sequence number expected from the peer. */
  expect = 0;

  constructor(public key: Buffer, private readonly dir: number) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  get buffered(): number { return this.buf.length; }

  next(): Frame | null {
    const b = this.buf;
    if (b.length < 4) return null;
    const len = b.readUInt32BE(0) + 4;
    if (len > MAX_FRAME) throw new ProtocolError('too_long', `frame of ${len} bytes (at most ${MAX_FRAME})`);
    if (len < HEADER + MAC) throw new ProtocolError('malformed', `frame of ${len} bytes is shorter than a header and a mac`);
    if (b.length < len) return null;
    const f = b.subarray(0, len);
    this.buf = b.subarray(len);
    const end = len - MAC;
    const want = mac(this.key, this.dir, f, end);
    if (!timingSafeEqual(want, f.subarray(end))) throw new ProtocolError('bad_mac', 'message authentication failed (wrong key, forged, or from another session)');
    if (f[5] !== VERSION) throw new ProtocolError('malformed', `protocol version ${f[5]} (this sluice speaks ${VERSION})`);
    const seq = f.readUInt32BE(8) * 0x1_0000_0000 + f.readUInt32BE(12);
    if (seq < this.expect) throw new ProtocolError('replay', `sequence number ${seq} already seen (expected ${this.expect})`);
    if (seq > this.expect) throw new ProtocolError('out_of_order', `sequence number ${seq} skips ahead (expected ${this.expect})`);
    this.expect++;
    const type = f[4] as T;
    if (type < T.HELLO || type > T.ACK) throw new ProtocolError('malformed', `unknown message type ${type}`);
    return { type, seq, payload: Buffer.from(f.subarray(HEADER, end)) };
  }
}

/** Numbers the frames one side sends (HELLO/HELLO_REPLY are 0, the session starts at 1). */
export class FrameWriter {
  seq = 0;
  constructor(public key: Buffer, private readonly dir: number) {}
  frame(type: T, payload?: Buffer): Buffer { return encode(this.key, this.dir, type, this.seq++, payload); }
}

export function f64s(...v: number[]): Buffer {
  const b = Buffer.allocUnsafe(8 * v.length);
  v.forEach((x, i) => b.writeDoubleBE(x, 8 * i));
  return b;
}

export function readF64s(p: Buffer, n: number): number[] {
  if (p.length !== 8 * n) throw new ProtocolError('malformed', `payload of ${p.length} bytes, expected ${8 * n}`);
  return Array.from({ length: n }, (_, i) => p.readDoubleBE(8 * i));
}

/** Reads a key file: at least 32 bytes after trimming one trailing newline. */
export function parseKey(text: Buffer, path: string): Buffer {
  let k = text;
  if (k.length > 0 && k[k.length - 1] === 0x0a) k = k.subarray(0, k.length - 1);
  if (k.length > 0 && k[k.length - 1] === 0x0d) k = k.subarray(0, k.length - 1);
  if (k.length < 32) throw new Error(`ha.key_file ${path}: the key has ${k.length} bytes; at least 32 are needed (e.g. head -c 48 /dev/urandom | base64 > ${path})`);
  return Buffer.from(k);
}
