/**
 * Big-endian field access over a Uint8Array, plus address formatting for tools.
 *
 * The readers do no bounds checks of their own: every view checks the length it needs once (in its
 * checked constructor) and then reads at constant offsets, which keeps the hot path branch-free.
 * Reading past the end of a Uint8Array yields undefined (→ 0 in the bit operations), never an
 * exception, but the fuzz test proves no parser relies on that (see fuzz.test.ts).
 */

export function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

export function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export function setU16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

export function setU32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** 10.0.0.1 → "10.0.0.1" (address as the unsigned 32-bit number of its network bytes). */
export function ipv4ToString(a: number): string {
  return `${(a >>> 24) & 0xff}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

/** "10.0.0.1" → 0x0a000001; returns -1 for anything that is not a dotted quad. */
export function parseIpv4(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return -1;
  let a = 0;
  for (let i = 1; i <= 4; i++) {
    const n = Number(m[i]);
    if (n > 255) return -1;
    a = a * 256 + n;
  }
  return a;
}

/** Strict dotted-quad parse for tests and builders: throws on bad input (never used on packets). */
export function ip4(s: string): number {
  const a = parseIpv4(s);
  if (a < 0) throw new Error(`not an IPv4 address: ${s}`);
  return a;
}

/** 16 address bytes at b[o] → RFC 5952 text (longest zero run compressed, lower case). */
export function ipv6ToString(b: Uint8Array, o: number): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push(u16(b, o + 2 * i));
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const h = w.map((x) => x.toString(16));
  if (bestAt < 0) return h.join(':');
  return `${h.slice(0, bestAt).join(':')}::${h.slice(bestAt + bestLen).join(':')}`;
}

export function toHex(b: Uint8Array, o = 0, len = b.length - o): string {
  let s = '';
  for (let i = 0; i < len; i++) s += b[o + i]!.toString(16).padStart(2, '0');
  return s;
}

/** Hex text (whitespace, ':' and '0x' tolerated) → bytes; null when malformed. */
export function fromHex(text: string): Uint8Array | null {
  const s = text.replace(/0x/gi, '').replace(/[\s:]/g, '');
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return null;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

/** A copy of b[start, end) as a plain Uint8Array (Buffer#slice would return a view, not a copy). */
export function copyBytes(b: Uint8Array, start: number, end: number): Uint8Array {
  const out = new Uint8Array(Math.max(0, end - start));
  out.set(b.subarray(start, end));
  return out;
}
