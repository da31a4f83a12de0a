/**
 * Append-only journal of learned mappings, so that `kill -9` and a restart lose no established
 * mapping (and force no renegotiation: the inbound SPIs were learned from traffic and cannot be
 * learned again without a new window).
 *
 * One line per change: `P kind public server host a b rh rl flags created` (put/replace) and
 * `D kind public server a b` (delete); numbers in decimal, addresses as uint32. Lines go to the kernel
 * with writeSync at the moment of the change (page cache survives a killed process). At start-up the
 * file is replayed and rewritten compacted (temp file + rename); it is compacted again whenever it
 * holds `slack` more lines than live records. Writes happen on SA creation/removal only, never per
 * forwarded packet.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface JournalEntry {
  kind: number;
  pub: number;
  server: number;
  host: number;
  a: number;
  b: number;
  rh: number;
  rl: number;
  flags: number;
  created: number;
}

function keyOf(kind: number, pub: number, server: number, a: number, b: number): string {
  return `${kind} ${pub} ${server} ${a} ${b}`;
}

export class Journal {
  private fd = -1;
  private lines = 0;
  /** Lines that could not be parsed at replay (a torn last line after a crash is expected). */
  badLines = 0;
  writeErrors = 0;

  constructor(readonly path: string, private readonly slack: number) {}

  /** Reads the journal (if any) and returns the live entries in order of first appearance. */
  load(): JournalEntry[] {
    const live = new Map<string, JournalEntry>();
    if (!existsSync(this.path)) return [];
    const text = readFileSync(this.path, 'utf8');
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const f = line.split(' ');
      const n = f.slice(1).map(Number);
      if (f[0] === 'P' && n.length === 10 && n.every(Number.isFinite)) {
        const [kind, pub, server, host, a, b, rh, rl, flags, created] = n;
        live.set(keyOf(kind, pub, server, a, b), { kind, pub, server, host, a, b, rh, rl, flags, created });
      } else if (f[0] === 'D' && n.length === 5 && n.every(Number.isFinite)) {
        live.delete(keyOf(n[0], n[1], n[2], n[3], n[4]));
      } else {
        this.badLines++;
      }
    }
    return [...live.values()];
  }

  /** Rewrites the file with exactly these entries and opens it for appending. */
  rewrite(entries: Iterable<JournalEntry>): void {
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    let n = 0;
    let chunk = '';
    for (const e of entries) {
      chunk += Journal.putLine(e);
      n++;
      if (chunk.length > 65536) { writeSync(fd, chunk); chunk = ''; }
    }
    if (chunk !== '') writeSync(fd, chunk);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.path);
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = openSync(this.path, 'a', 0o600);
    this.lines = n;
  }

  static putLine(e: JournalEntry): string {
    return `P ${e.kind} ${e.pub >>> 0} ${e.server >>> 0} ${e.host >>> 0} ${e.a >>> 0} ${e.b >>> 0} ${e.rh >>> 0} ${e.rl >>> 0} ${e.flags} ${Math.round(e.created)}\n`;
  }

  put(e: JournalEntry): void {
    this.append(Journal.putLine(e));
  }

  del(kind: number, pub: number, server: number, a: number, b: number): void {
    this.append(`D ${kind} ${pub >>> 0} ${server >>> 0} ${a >>> 0} ${b >>> 0}\n`);
  }

  /** True when the caller should call rewrite() with its live entries. */
  needsCompaction(liveCount: number): boolean {
    return this.lines > liveCount + this.slack;
  }

  private append(line: string): void {
    if (this.fd < 0) return;
    try {
      writeSync(this.fd, line);
      this.lines++;
    } catch {
      this.writeErrors++;
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
