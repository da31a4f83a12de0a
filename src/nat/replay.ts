/**
 * Journal replay: reads the file in chunks (no whole-file string, whatever its size), validates every
 * record and counts what it refuses by reason. A refused line is skipped, never half-applied: a
 * record of an unknown kind or with an address of 0 would otherwise make a ghost that counts toward
 * the caps and is never freed.
 */
import type { JournalEntry } from './journal';

export const REPLAY_REASONS = [
  /** Not `P` + 10 fields or `D` + 5 fields of plain decimal digits. */
  'malformed',
  /** The last line has no newline: a write cut short by a crash or a full disk. */
  'cut',
  /** A record kind that is never journaled (only inbound ESP and IKE are). */
  'bad_kind',
  /** Public, server or host address 0. */
  'bad_address',
  /** A number above 2^32-1 where a 32-bit field belongs. */
  'out_of_range',
  /** SPI 0 (an ESP SPI, or both words of an IKE initiator SPI). */
  'bad_spi',
  /** Flags above 255 or a creation time in the future (beyond a day of clock skew). */
  'bad_field',
  /** A line longer than any record (garbage, or a file that is not a journal). */
  'too_long',
] as const;
export type ReplayReason = (typeof REPLAY_REASONS)[number];

export interface ReplayStats {
  /** Lines read (every line, refused or not). */
  lines: number;
  /** Live records after replay. */
  records: number;
  refused: Partial<Record<ReplayReason, number>>;
}

const MAX_LINE = 160;
const U32 = /^(0|[1-9]\d{0,9})$/;
const TIME = /^(0|[1-9]\d{0,15})$/;
const KIND_ESP_IN = 1;
const KIND_IKE = 3;
const DAY_MS = 86_400_000;

function u32(s: string | undefined): number {
  if (s === undefined || !U32.test(s)) return -1;
  const n = Number(s);
  return n > 0xffffffff ? -2 : n;
}

function keyOf(kind: number, pub: number, server: number, a: number, b: number): string {
  return `${kind} ${pub} ${server} ${a} ${b}`;
}

/** Checks one line; returns the refusal reason or null, filling `out` (P) / `key` (D). */
function check(f: string[], now: number, out: JournalEntry): ReplayReason | null {
  const put = f[0] === 'P';
  if (!(put && f.length === 11) && !(f[0] === 'D' && f.length === 6)) return 'malformed';
  const n: number[] = [];
  const last = put ? 9 : 6;
  for (let i = 1; i < last; i++) {
    const v = u32(f[i]);
    if (v === -1) return 'malformed';
    if (v === -2) return 'out_of_range';
    n.push(v);
  }
  const kind = n[0]!;
  if (kind !== KIND_ESP_IN && kind !== KIND_IKE) return 'bad_kind';
  const pub = n[1]!, server = n[2]!;
  if (pub === 0 || server === 0) return 'bad_address';
  if (!put) {
    const a = n[3]!, b = n[4]!;
    if (a === 0 && b === 0) return 'bad_spi';
    out.kind = kind; out.pub = pub; out.server = server; out.a = a; out.b = b;
    return null;
  }
  const host = n[3]!, a = n[4]!, b = n[5]!, rh = n[6]!, rl = n[7]!;
  if (host === 0) return 'bad_address';
  // SPI 0 is reserved (RFC 4303 §2.1); an IKE SA needs a non-zero initiator SPI. The other words
  // (b, rh, rl) belong to the stage's record format and are not second-guessed here.
  if (kind === KIND_ESP_IN ? a === 0 : (a | b) === 0) return 'bad_spi';
  const flags = u32(f[9]);
  if (flags === -1) return 'malformed';
  if (flags === -2) return 'out_of_range';
  if (flags > 0xff) return 'bad_field';
  const t = f[10]!;
  if (!TIME.test(t)) return 'malformed';
  const created = Number(t);
  if (created > now + DAY_MS) return 'bad_field';
  out.kind = kind; out.pub = pub; out.server = server; out.host = host; out.a = a; out.b = b;
  out.rh = rh; out.rl = rl; out.flags = flags; out.created = created;
  return null;
}

/** One line (no newline) checked as replay checks it: the change, or why it is refused (HA replication). */
export function parseJournalLine(text: string, now: number): { put: boolean; entry: JournalEntry } | ReplayReason {
  if (text.length > MAX_LINE) return 'too_long';
  const entry: JournalEntry = { kind: 0, pub: 0, server: 0, host: 0, a: 0, b: 0, rh: 0, rl: 0, flags: 0, created: 0 };
  const why = check(text.split(' '), now, entry);
  return why ?? { put: text.charCodeAt(0) === 0x50, entry };
}

/**
 * Replays a journal given a chunked reader (returns bytes read into buf, 0 at the end).
 * Returns the live entries in order of first appearance and what was refused.
 */
export function parseJournal(read: (buf: Buffer) => number, now: number): { entries: JournalEntry[]; stats: ReplayStats } {
  const live = new Map<string, JournalEntry>();
  const stats: ReplayStats = { lines: 0, records: 0, refused: {} };
  const refuse = (r: ReplayReason): void => { stats.refused[r] = (stats.refused[r] ?? 0) + 1; };
  const e: JournalEntry = { kind: 0, pub: 0, server: 0, host: 0, a: 0, b: 0, rh: 0, rl: 0, flags: 0, created: 0 };
  const line = (text: string): void => {
    stats.lines++;
    if (text.length > MAX_LINE) { refuse('too_long'); return; }
    const why = check(text.split(' '), now, e);
    if (why !== null) { refuse(why); return; }
    const key = keyOf(e.kind, e.pub, e.server, e.a, e.b);
    if (text.charCodeAt(0) === 0x50 /* P */) {
      const prev = live.get(key);
      if (prev) Object.assign(prev, e);
      else live.set(key, { ...e });
    } else {
      live.delete(key);
    }
  };
  const buf = Buffer.allocUnsafe(1 << 20);
  let carry = '';
  let overlong = false;
  for (;;) {
    const n = read(buf);
    if (n <= 0) break;
    const text = carry + buf.toString('latin1', 0, n);
    let start = 0;
    let nl: number;
    while ((nl = text.indexOf('\n', start)) >= 0) {
      if (overlong) { stats.lines++; refuse('too_long'); overlong = false; }
      else if (nl > start) line(text.slice(start, nl));
      start = nl + 1;
    }
    carry = text.slice(start);
    // A line that never ends is not held in memory: it is refused when its newline (or EOF) comes.
    if (carry.length > MAX_LINE) { overlong = true; carry = ''; }
  }
  if (overlong || carry !== '') { stats.lines++; refuse(overlong ? 'too_long' : 'cut'); }
  stats.records = live.size;
  return { entries: [...live.values()], stats };
}
