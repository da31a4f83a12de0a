/**
 * Append-only journal of learned mappings, so that `kill -9`, a restart and (with `sync`) a power
 * cut lose no established mapping (the inbound SPIs were learned from traffic and cannot be learned
 * again without a new window).
 *
 * One line per change: `P kind public server host a b rh rl flags created` (put/replace) and
 * `D kind public server a b` (delete); numbers in decimal, addresses as uint32.
 *
 * put()/del() hand their line to the kernel at the moment of the change (one write into the page
 * cache, microseconds; the mass changes of an idle sweep come in slices of at most 1 ms), so a
 * killed process loses nothing. Nothing slow runs on the packet thread: fsyncs run in the libuv
 * thread pool and compaction is incremental (below). What a power cut can lose depends on `sync`:
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
 * directory (so the rename itself survives a power cut). beginRewrite() does it incrementally and
 * asynchronously; every change made meanwhile is also kept in a tail that is appended to the new
 * file before it is adopted (replaying a change twice gives the same state).
 */
import * as fs from 'node:fs';
import { openPrivate } from '../state/private';
import { dirname } from 'node:path';
import { SaKind } from './table';
import { type ReplayStats, parseJournal } from './replay';

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
      let chunk = '';
      for (const e of entries) {
        chunk += Journal.putLine(e);
        n++;
        if (chunk.length > 65536) { fs.writeSync(fd, chunk); chunk = ''; }
      }
      if (chunk !== '') fs.writeSync(fd, chunk);
      fs.fdatasyncSync(fd);
      fs.renameSync(tmp, this.path);
      syncDirSync(dirname(this.path));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    this.adopt(fd, n, []);
  }

  static putLine(e: JournalEntry): string {
    return `P ${e.kind} ${e.pub >>> 0} ${e.server >>> 0} ${e.host >>> 0} ${e.a >>> 0} ${e.b >>> 0} ${e.rh >>> 0} ${e.rl >>> 0} ${e.flags & 0xff} ${Math.max(0, Math.round(e.created))}\n`;
  }

  put(e: JournalEntry): void {
    this.append(Journal.putLine(e));
  }

  del(kind: number, pub: number, server: number, a: number, b: number): void {
    this.append(`D ${kind} ${pub >>> 0} ${server >>> 0} ${a >>> 0} ${b >>> 0}\n`);
  }

  /** True when the caller should rewrite the file from its live entries. */
  needsCompaction(liveCount: number): boolean {
    return this.rw === null && this.fd >= 0 && this.lines > liveCount + this.opts.slack;
  }

  get rewriting(): boolean { return this.rw !== null; }

  private append(line: string): void {
    if (this.closed) return;
    if (this.rw) this.rw.tail.push(line);
    if (this.degraded || this.fd < 0) { this.lost++; return; }
    // One write into the page cache (microseconds), at the moment of the change: a process killed
    // right after loses nothing, and the learning books replayed after a restart are exact.
    try {
      fs.writeSync(this.fd, line);
    } catch (e) {
      this.lost++;
      this.degrade(e as NodeJS.ErrnoException, 'write');
      return;
    }
    this.lines++;
    this.dirty = true;
    if (this.opts.sync === 'always') this.syncSoon();
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
  adopt(fd: number, lines: number, rest: string[]): void {
    const old = this.fd;
    this.fd = fd;
    if (old >= 0 && !this.inflight) fs.closeSync(old);
    this.rw = null;
    this.lines = lines + rest.length;
    this.degraded = false;
    this.dirty = true;
    this.startSyncTimer();
    // Changes made during the rename and directory sync, in order, before anything later.
    if (rest.length > 0) {
      try { fs.writeSync(fd, rest.join('')); } catch (e) { this.lost += rest.length; this.degrade(e as NodeJS.ErrnoException, 'write'); }
    }
    if (this.opts.sync === 'always') this.syncSoon();
  }

  /** @internal */
  endRewrite(): void { this.rw = null; }

  /** Syncs (this is shutdown) and closes the file. */
  close(): void {
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

/** An asynchronous compaction in progress (see Journal.beginRewrite). */
export class Rewrite {
  /** Changes made since the rewrite began (appended to the new file before it is adopted). */
  tail: string[] = [];
  private fd = -1;
  private opening: Promise<void>;
  private buf: string[] = [];
  private bufBytes = 0;
  private count = 0;
  private failed: NodeJS.ErrnoException | null = null;
  private aborted = false;

  constructor(private readonly j: Journal, private readonly tmp: string) {
    this.opening = new Promise((resolve) => {
      // Never through whatever sits at the temp name (a symlink planted there): remove it, then
      // create the file afresh, refusing to follow a link.
      try { fs.unlinkSync(tmp); } catch { /* absent */ }
      const c = fs.constants;
      fs.open(tmp, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o600, (err, fd) => {
        if (err) this.failed = err;
        else if (this.aborted) { try { fs.closeSync(fd); fs.unlinkSync(tmp); } catch { /* gone */ } }
        else this.fd = fd;
        resolve();
      });
    });
  }

  add(e: JournalEntry): void {
    const l = Journal.putLine(e);
    this.buf.push(l);
    this.bufBytes += l.length;
    this.count++;
  }

  get buffered(): number { return this.bufBytes; }

  /** Writes what add() queued; rejects on a write error. */
  async drain(): Promise<void> {
    await this.opening;
    this.check();
    if (this.buf.length === 0) return;
    const data = Buffer.from(this.buf.join(''));
    this.buf = [];
    this.bufBytes = 0;
    await new Promise<void>((resolve, reject) => writeAll(this.fd, data, (e) => (e ? reject(e) : resolve())));
  }

  private check(): void {
    if (this.failed) throw this.failed;
    if (this.aborted) throw Object.assign(new Error('rewrite aborted (journal closed)'), { code: 'EABORTED' });
  }

  /** Appends the tail, syncs, renames over the journal, fsyncs the directory and hands the file over. */
  async finish(): Promise<void> {
    try {
      await this.drain();
      // The tail once (it keeps growing while we write: what comes later goes through adopt()).
      const t = this.tail;
      this.tail = [];
      const tailWritten = t.length;
      for (const l of t) this.buf.push(l);
      await this.drain();
      await new Promise<void>((res, rej) => fs.fdatasync(this.fd, (e) => (e ? rej(e) : res())));
      this.check();
      await fs.promises.rename(this.tmp, this.j.path);
      this.check();
      await syncDir(dirname(this.j.path));
      this.check();
      // Changes that came during the rename and directory sync are still in the tail: the journal
      // writes them to the new file, in order, before anything later.
      const rest = this.tail;
      this.tail = [];
      this.j.adopt(this.fd, this.count + tailWritten, rest);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.j.endRewrite();
    // Synchronously (an error path, two quick syscalls): an asynchronous unlink could remove the
    // temp file of the next attempt.
    if (this.fd >= 0) {
      const fd = this.fd;
      this.fd = -1;
      try { fs.closeSync(fd); fs.unlinkSync(this.tmp); } catch { /* already gone */ }
    }
  }
}

function writeAll(fd: number, buf: Buffer, cb: (err: NodeJS.ErrnoException | null) => void, off = 0): void {
  if (off >= buf.length) { cb(null); return; }
  fs.write(fd, buf, off, buf.length - off, null, (err, n) => {
    if (err) cb(err);
    else if (n === 0) cb(Object.assign(new Error('short write'), { code: 'EIO' }));
    else writeAll(fd, buf, cb, off + n);
  });
}

function syncDirSync(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

async function syncDir(dir: string): Promise<void> {
  const h = await fs.promises.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try { await h.sync(); } finally { await h.close(); }
}

/** Journaled record kinds (outbound ESP is relearned from cleartext and never journaled). */
export const JOURNALED_KINDS: readonly number[] = [SaKind.ESP_IN, SaKind.IKE];
