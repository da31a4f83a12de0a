/**
 * Append-only journal of learned mappings, so that `kill -9`, a restart and (with `sync`) a power
 * cut lose no established mapping (the inbound SPIs were learned from traffic and cannot be learned
 * again without a new window).
 *
 * One line per change: `P kind public server host a b rh rl flags created` (put/replace) and
 * `D kind public server a b` (delete); numbers in decimal, addresses as uint32.
 *
 * put()/del() hand their line to the kernel at the moment of the change (one write into the page
 * cache, microseconds), so a killed process loses nothing. Between beginBatch() and endBatch() (a
 * packet batch, before its verdicts are sent; an idle sweep's slice of at most 1 ms) lines collect
 * in a buffer and go out in one write at its end.
 * Lines are formatted as bytes into a preallocated buffer (lines.ts): no string per change. Nothing
 * slow runs on the packet thread: fsyncs run in the libuv thread pool and compaction is incremental
 * (rewrite.ts). What a power cut can lose depends on `sync`:
 * - `batch` (default): the file is fdatasync'ed every `interval_ms` when something was written;
 *   a power cut loses at most the changes of the last interval_ms (plus the fsync's own time).
 * - `always`: every write is followed by fdatasync before the next write starts; a power cut loses
 *   only the changes whose fdatasync had not returned (one disk flush, a few ms).
 * - `none`: never fsynced; a power cut loses whatever the kernel had not written back (up to ~30 s
 *   with default vm.dirty_* settings).
 * A write or fsync error (ENOSPC, EROFS, EIO) puts the journal in a degraded mode: changes are
 * counted as lost, the packet path goes on, the owner is told once (alarm), and a full rewrite from
 * the tables (rewrite()/beginRewrite()) is what brings the file back in line.
 *
 * Compaction writes a temp file, fdatasyncs it, renames it over the journal and fsyncs the
 * directory (so the rename itself survives a power cut): rewrite() synchronously, beginRewrite()
 * incrementally and asynchronously (rewrite.ts).
 */
import * as fs from 'node:fs';
import { openPrivate } from '../state/private';
import { dirname } from 'node:path';
import { SaKind } from './table';
import { type ReplayStats, parseJournal } from './replay';
import { Ascii } from './ascii';
import { MAX_LINE_BYTES, delLineTo, putLineTo } from './lines';
import { Rewrite, syncDirSync, writeAllSync, type Tail } from './rewrite';

export { Rewrite } from './rewrite';

export { REPLAY_REASONS, type ReplayReason, type ReplayStats } from './replay';

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

export type SyncPolicy = 'batch' | 'always' | 'none';

export interface JournalOptions {
  /** Compact when the file holds this many more lines than live records. */
  slack: number;
  sync?: SyncPolicy;
  /** `batch`: fdatasync period in ms. */
  intervalMs?: number;
  /** Called once when the journal goes degraded (the alarm); `what` says which operation failed. */
  onError?: (err: NodeJS.ErrnoException, what: string) => void;
}


type Cb = () => void;

export class Journal {
  private fd = -1;
  private lines = 0;
  private inflight = false;
  private dirty = false;
  private syncTimer: NodeJS.Timeout | null = null;
  private idleWaiters: Cb[] = [];
  private rw: Rewrite | null = null;
  /** Lines formatted and not yet written (one write per change, or per batch). */
  private readonly out = new Ascii(1 << 16);
  private outLines = 0;
  private batching = 0;
  private readonly opts: Required<Omit<JournalOptions, 'onError'>> & Pick<JournalOptions, 'onError'>;
  /** Replay result of the last load(). */
  replay: ReplayStats = { lines: 0, records: 0, refused: {} };
  /** Lines refused at replay (sum over reasons; a torn last line after a crash is expected). */
  badLines = 0;
  writeErrors = 0;
  /** Changes not written because the journal was degraded. */
  lost = 0;
  degraded = false;
  degradedAt = 0;
  lastError = '';
  fsyncs = 0;
  /** write(2) calls that appended changes (one per change, or per batch of changes). */
  appendWrites = 0;

  constructor(readonly path: string, opts: number | JournalOptions) {
    const o = typeof opts === 'number' ? { slack: opts } : opts;
    this.opts = { slack: o.slack, sync: o.sync ?? 'batch', intervalMs: o.intervalMs ?? 100, onError: o.onError };
  }

  /**
   * Reads the journal (if any), validates every record and returns the live entries in order of
   * first appearance. Refused lines are counted by reason in `replay`.
   */
  load(now = Date.now()): JournalEntry[] {
    let fd: number;
    try {
      fd = fs.openSync(this.path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new Error(`NAT journal ${this.path}: cannot read: ${(e as Error).message}`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) throw new Error(`NAT journal ${this.path} is a directory, not a file (set nat.journal.path to a file name)`);
      if (!st.isFile()) throw new Error(`NAT journal ${this.path} is not a regular file`);
      const { entries, stats } = parseJournal((buf) => fs.readSync(fd, buf, 0, buf.length, null), now);
      this.replay = stats;
      this.badLines = Object.values(stats.refused).reduce((a, b) => a + (b ?? 0), 0);
      this.cutTail = stats.refused.cut !== undefined;
      this.lines = stats.lines;
      return entries;
    } finally {
      fs.closeSync(fd);
    }
  }

  private cutTail = false;
  private closed = false;

  /**
   * Opens the journal for appending after load() (a torn last line is ended first so it stays
   * alone). A file that cannot be opened (read-only or full filesystem) leaves the journal degraded,
   * not the gateway down: the owner's retries (rewrites) bring it back.
   */
  openAppend(): void {
    this.startSyncTimer();
    try {
      fs.mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      const fd = openPrivate(this.path, 'a');
      if (this.fd >= 0) fs.closeSync(this.fd);
      this.fd = fd;
      if (this.cutTail) { fs.writeSync(this.fd, '\n'); this.cutTail = false; }
    } catch (e) {
      this.degrade(e as NodeJS.ErrnoException, 'open');
    }
  }

  /** Rewrites the file with exactly these entries, synchronously, and opens it for appending. */
  rewrite(entries: Iterable<JournalEntry>): void {
    fs.mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp`;
    const fd = openPrivate(tmp, 'w', { temp: true });
    let n = 0;
    try {
      const o = new Ascii(1 << 16);
      for (const e of entries) {
        if (o.room() < MAX_LINE_BYTES) { writeAllSync(fd, o.buf, 0, o.n); o.reset(); }
        putLineTo(o, e.kind, e.pub, e.server, e.host, e.a, e.b, e.rh, e.rl, e.flags, e.created);
        n++;
      }
      writeAllSync(fd, o.buf, 0, o.n);
      fs.fdatasyncSync(fd);
      fs.renameSync(tmp, this.path);
      syncDirSync(dirname(this.path));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    this.adopt(fd, n, null);
  }

  /** One put line as a string (the reference format; appends format bytes, lines.ts). */
  static putLine(e: JournalEntry): string {
    return `P ${e.kind} ${e.pub >>> 0} ${e.server >>> 0} ${e.host >>> 0} ${e.a >>> 0} ${e.b >>> 0} ${e.rh >>> 0} ${e.rl >>> 0} ${e.flags & 0xff} ${Math.max(0, Math.round(e.created))}\n`;
  }

  put(e: JournalEntry): void {
    if (this.closed) return;
    putLineTo(this.out, e.kind, e.pub, e.server, e.host, e.a, e.b, e.rh, e.rl, e.flags, e.created);
    this.appended();
  }

  del(kind: number, pub: number, server: number, a: number, b: number): void {
    if (this.closed) return;
    delLineTo(this.out, kind, pub, server, a, b);
    this.appended();
  }

  /**
   * From here to endBatch(), changes collect in the buffer and go out in one write (a mass change:
   * an idle sweep's slice). The caller ends the batch before it yields the event loop.
   */
  beginBatch(): void { this.batching++; }

  endBatch(): void {
    if (this.batching > 0 && --this.batching === 0) this.flushOut();
  }

  /** True when the caller should rewrite the file from its live entries. */
  needsCompaction(liveCount: number): boolean {
    return this.rw === null && this.fd >= 0 && this.lines > liveCount + this.opts.slack;
  }

  get rewriting(): boolean { return this.rw !== null; }

  private appended(): void {
    this.outLines++;
    if (this.batching === 0 || this.out.room() < MAX_LINE_BYTES) this.flushOut();
  }

  private flushOut(): void {
    const o = this.out;
    const lines = this.outLines;
    if (lines === 0) return;
    this.outLines = 0;
    try {
      if (this.rw) this.rw.tail.push(o.view(), lines);
      if (this.degraded || this.fd < 0) { this.lost += lines; return; }
      // One write into the page cache (microseconds), at the moment of the change (or the end of the
      // batch): a process killed right after loses nothing, and the learning books replayed after a
      // restart are exact.
      try {
        this.appendWrites++;
        writeAllSync(this.fd, o.buf, 0, o.n);
      } catch (e) {
        this.lost += lines;
        this.degrade(e as NodeJS.ErrnoException, 'write');
        return;
      }
      this.lines += lines;
      this.dirty = true;
      if (this.opts.sync === 'always') this.syncSoon();
    } finally {
      o.reset();
    }
  }

  /** `always`: one fdatasync in flight at a time (libuv thread pool), again while changes came meanwhile. */
  private syncSoon(): void {
    if (this.inflight || this.fd < 0 || !this.dirty) return;
    const fd = this.fd;
    this.inflight = true;
    this.dirty = false;
    fs.fdatasync(fd, (e) => {
      if (!e) this.fsyncs++;
      this.done(fd, e, 'fdatasync');
      if (this.opts.sync === 'always') this.syncSoon();
    });
  }

  private done(fd: number, err: NodeJS.ErrnoException | null, what: string): void {
    this.inflight = false;
    // Replaced by a rewrite (or closed) meanwhile: that file's errors no longer matter.
    if (fd !== this.fd) fs.close(fd, () => {});
    else if (err) this.degrade(err, what);
    this.notifyIdle();
  }

  private degrade(err: NodeJS.ErrnoException, what: string): void {
    this.writeErrors++;
    if (this.degraded) return;
    this.degraded = true;
    this.degradedAt = Date.now();
    this.lastError = `${what}: ${err.code ?? err.message}`;
    this.opts.onError?.(err, what);
  }

  private startSyncTimer(): void {
    if (this.opts.sync !== 'batch' || this.syncTimer) return;
    this.syncTimer = setInterval(() => {
      if (!this.dirty || this.inflight || this.fd < 0) return;
      const fd = this.fd;
      this.inflight = true;
      this.dirty = false;
      fs.fdatasync(fd, (e) => { if (!e) this.fsyncs++; this.done(fd, e, 'fdatasync'); });
    }, this.opts.intervalMs);
    this.syncTimer.unref();
  }

  private notifyIdle(): void {
    if (this.inflight) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const cb of w) cb();
  }

  /** Resolves when no fdatasync is in flight (every change is in the kernel already). */
  flushed(): Promise<void> {
    if (!this.inflight) return Promise.resolve();
    return new Promise((r) => { this.idleWaiters.push(r); });
  }

  /**
   * Starts an incremental rewrite: the caller add()s every live entry (in slices, awaiting drain()),
   * then finish()es. Returns null while another rewrite runs or when the journal is closed. This is
   * also how a degraded journal (or one that could not be opened) comes back.
   */
  beginRewrite(): Rewrite | null {
    if (this.rw || this.closed) return null;
    this.rw = new Rewrite(this, `${this.path}.tmp`);
    return this.rw;
  }

  /** @internal The rewrite is on disk under the journal's name: append to it from now on. */
  adopt(fd: number, lines: number, rest: ReturnType<Tail['take']> | null): void {
    const old = this.fd;
    this.fd = fd;
    // Asynchronously: the old file was renamed over, so this close frees it (tens of MB of blocks
    // at 1M SAs: milliseconds of truncation in the kernel, not on the packet thread).
    if (old >= 0 && !this.inflight) fs.close(old, () => {});
    this.rw = null;
    this.lines = lines + (rest?.lines ?? 0);
    this.degraded = false;
    this.dirty = true;
    this.startSyncTimer();
    // Changes made during the rename and directory sync, in order, before anything later.
    if (rest && rest.data.length > 0) {
      try { writeAllSync(fd, rest.data); } catch (e) { this.lost += rest.lines; this.degrade(e as NodeJS.ErrnoException, 'write'); }
    }
    if (this.opts.sync === 'always') this.syncSoon();
  }

  /** @internal */
  endRewrite(): void { this.rw = null; }

  /** Syncs (this is shutdown) and closes the file. */
  close(): void {
    this.flushOut();
    this.closed = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.syncTimer = null;
    this.rw?.abort();
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    try {
      if (this.opts.sync !== 'none' && !this.degraded) fs.fdatasyncSync(fd);
    } catch (e) {
      this.degrade(e as NodeJS.ErrnoException, 'close');
    }
    if (!this.inflight) fs.closeSync(fd); // else done() closes it when the write in flight returns
    this.notifyIdle();
  }
}

/** Journaled record kinds (outbound ESP is relearned from cleartext and never journaled). */
export const JOURNALED_KINDS: readonly number[] = [SaKind.ESP_IN, SaKind.IKE];
