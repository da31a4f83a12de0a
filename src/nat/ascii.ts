/**
 * An ASCII text builder over one preallocated Buffer: numbers and short strings are written as bytes,
 * with no string or object made per call. The journal's lines (lines.ts) and the streamed `sa-list`
 * (listjson.ts) are formatted through it, so that formatting a million records straight from the
 * typed arrays leaves nothing for the garbage collector (whose pauses, not the work, were the stalls).
 *
 * The caller keeps `room()` ahead of what it writes (every writer here bounds its own output), so a
 * write never checks bounds per byte; grow() is there for a caller that cannot know in advance.
 */
export class Ascii {
  buf: Buffer;
  n = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Bytes still free. */
  room(): number { return this.buf.length - this.n; }

  /** Makes room for at least `k` more bytes (a copy into a larger buffer; the old one is dropped). */
  grow(k: number): void {
    if (this.room() >= k) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(b, 0, 0, this.n);
    this.buf = b;
  }

  reset(): void { this.n = 0; }

  /** The text so far (a view: valid until the next write or reset). */
  view(): Buffer { return this.buf.subarray(0, this.n); }

  byte(c: number): void { this.buf[this.n++] = c; }

  /** A constant, pre-encoded (see bytes()). */
  raw(b: Uint8Array): void {
    this.buf.set(b, this.n);
    this.n += b.length;
  }

  /** A short Latin-1 string (rare paths: the fallbacks below). */
  latin1(s: string): void {
    this.n += this.buf.write(s, this.n, 'latin1');
  }

  /**
   * A non-negative integer up to 2^53 in decimal (what String(v) gives for it). Digits are
   * extracted with exact double arithmetic: for safe integers v % 10 and (v - d) / 10 are exact.
   */
  uint(v: number): void {
    let len = 1;
    for (let p = 10; p <= v; p *= 10) len++; // p stays exact: 1e16 > 2^53
    let i = this.n + len;
    this.n = i;
    const b = this.buf;
    do {
      const d = v % 10;
      b[--i] = 48 + d;
      v = (v - d) / 10;
    } while (v > 0);
  }

  /** Exactly what String(v) (a template literal) writes, without a string for the common case. */
  num(v: number): void {
    if (v >= 0 && v <= Number.MAX_SAFE_INTEGER && Math.floor(v) === v) this.uint(v);
    else this.latin1(String(v));
  }

  /** Exactly what JSON.stringify(v) writes for a number. */
  json(v: number): void {
    if (v >= 0 && v <= Number.MAX_SAFE_INTEGER && Math.floor(v) === v) this.uint(v);
    else this.latin1(JSON.stringify(v));
  }

  /** A uint32 as 8 lower-case hex digits (the SPI format of the listing). */
  hex8(v: number): void {
    const b = this.buf;
    let i = this.n + 8;
    this.n = i;
    v >>>= 0;
    for (let k = 0; k < 8; k++) {
      const d = v & 15;
      b[--i] = d < 10 ? 48 + d : 87 + d;
      v >>>= 4;
    }
  }

  /** A uint32 as a dotted IPv4 address. */
  ipv4(v: number): void {
    v >>>= 0;
    this.uint(v >>> 24);
    this.byte(46);
    this.uint((v >>> 16) & 255);
    this.byte(46);
    this.uint((v >>> 8) & 255);
    this.byte(46);
    this.uint(v & 255);
  }
}

/** A constant string as bytes, for Ascii.raw(). */
export function bytes(s: string): Uint8Array {
  return Buffer.from(s, 'latin1');
}
