/**
 * The journal's line format, written as bytes (ascii.ts): `P kind public server host a b rh rl flags
 * created` (put/replace) and `D kind public server a b` (delete), numbers in decimal, addresses as
 * uint32, one line each. Byte for byte what Journal.putLine() and the old template strings produced
 * (lines.test.ts compares them on random and edge values), so replay (replay.ts) reads both alike.
 */
import type { Ascii } from './ascii';
import type { SaTable } from './table';

/**
 * Room to keep free before writing one line: 2 letters and 10 fields, nine of them at most 10
 * digits, the creation time at most 23 characters (String() of any double).
 */
export const MAX_LINE_BYTES = 160;

const P = 0x50;
const D = 0x44;
const SP = 0x20;
const NL = 0x0a;

function field32(o: Ascii, v: number): void {
  o.byte(SP);
  o.uint(v >>> 0);
}

/** A put line from its fields (`kind` and `created` as String() shows them, the rest as uint32). */
export function putLineTo(o: Ascii, kind: number, pub: number, server: number, host: number, a: number, b: number,
  rh: number, rl: number, flags: number, created: number): void {
  o.byte(P);
  o.byte(SP);
  o.num(kind);
  field32(o, pub);
  field32(o, server);
  field32(o, host);
  field32(o, a);
  field32(o, b);
  field32(o, rh);
  field32(o, rl);
  o.byte(SP);
  o.uint(flags & 0xff);
  o.byte(SP);
  o.num(Math.max(0, Math.round(created)));
  o.byte(NL);
}

/** A delete line. */
export function delLineTo(o: Ascii, kind: number, pub: number, server: number, a: number, b: number): void {
  o.byte(D);
  o.byte(SP);
  o.num(kind);
  field32(o, pub);
  field32(o, server);
  field32(o, a);
  field32(o, b);
  o.byte(NL);
}

/** The put line of SA record `id`, straight from the table's arrays (no entry object). */
export function recordLineTo(o: Ascii, sas: SaTable, publics: Uint32Array, id: number): void {
  putLineTo(o, sas.kind[id]!, publics[sas.pub[id]!]!, sas.server[id]!, sas.host[id]!, sas.a[id]!, sas.b[id]!,
    sas.rh[id]!, sas.rl[id]!, sas.flags[id]!, sas.created[id]!);
}
