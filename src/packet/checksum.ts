/**
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * Full checksums are for building packets and for verifying in tests and tools; a NAT rewrite uses
 * the incremental forms, which cost a few additions whatever the packet size:
 *
 *   RFC 1624, 3: "HC' = ~(~HC + ~m + m')" (eqn. 3) — it never produces the -0 (0xffff→0x0000)
 *   ambiguity that eqn. 2 of RFC 1141 has.
 *
 * All values are plain numbers; sums are kept unfolded in a double (exact to 2^53), folded once.
 */

/** One's-complement sum (unfolded) of bytes[off, off+len) as 16-bit big-endian words; an odd last
 * byte is padded with zero (RFC 1071). `initial` adds a previous partial sum (e.g. a pseudo-header). */
export function onesSum(b: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + (len & ~1);
  let i = off;
  for (; i < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (len & 1) sum += b[i]! << 8;
  return sum;
}

/** Folds an unfolded sum to 16 bits with end-around carry. */
export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value: ~fold(sum(bytes) + initial). Verifying a region that contains its own
 * checksum yields 0 when it is right. */
export function internetChecksum(b: Uint8Array, off: number, len: number, initial = 0): number {
  return ~foldSum(onesSum(b, off, len, initial)) & 0xffff;
}

/** RFC 1624 eqn. 3 for one 16-bit word changed from oldWord to newWord. */
export function checksumAdjust(oldChecksum: number, oldWord: number, newWord: number): number {
  let s = (~oldChecksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** RFC 1624 eqn. 3 for a 32-bit field (an IPv4 address, an SPI) changed from oldValue to newValue. */
export function checksumAdjust32(oldChecksum: number, oldValue: number, newValue: number): number {
  let s = (~oldChecksum & 0xffff)
    + (~(oldValue >>> 16) & 0xffff) + (~oldValue & 0xffff)
    + ((newValue >>> 16) & 0xffff) + (newValue & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Unfolded sum of the IPv4 pseudo-header (RFC 768 / RFC 793): src, dst, zero, protocol, length. */
export function pseudoHeaderSum4(src: number, dst: number, proto: number, l4Length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + l4Length;
}

/** Unfolded sum of the IPv6 pseudo-header (RFC 8200, 8.1); addresses are read at b[srcOff], b[dstOff]. */
export function pseudoHeaderSum6(b: Uint8Array, srcOff: number, dstOff: number, nextHeader: number,
  l4Length: number): number {
  const s = onesSum(b, srcOff, 16, onesSum(b, dstOff, 16));
  return s + (l4Length >>> 16) + (l4Length & 0xffff) + nextHeader;
}

// RFC 768: "If the computed checksum is zero, it is transmitted as all ones ... An all zero
// transmitted checksum value means that the transmitter generated no checksum."
/** Adjusts a UDP checksum field value for a changed 16-bit word, keeping the zero rule. */
export function udpChecksumAdjust(old: number, oldWord: number, newWord: number): number {
  if (old === 0) return 0;
  const c = checksumAdjust(old, oldWord, newWord);
  return c === 0 ? 0xffff : c;
}

/** Adjusts a UDP checksum field value for a changed 32-bit field (a pseudo-header address). */
export function udpChecksumAdjust32(old: number, oldValue: number, newValue: number): number {
  if (old === 0) return 0;
  const c = checksumAdjust32(old, oldValue, newValue);
  return c === 0 ? 0xffff : c;
}
