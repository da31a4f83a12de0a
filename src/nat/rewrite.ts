/**
 * An asynchronous compaction of the journal (Journal.beginRewrite): the caller formats every live
 * record into the rewrite's buffer (straight from the SA table, lines.ts) in short slices and
 * drain()s it between them; writes run in the libuv thread pool. Changes made meanwhile are kept in
 * a tail that is appended to the new file before it is adopted (replaying a change twice gives the
 * same state). finish() fdatasyncs the temp file, renames it over the journal and fsyncs the
 * directory (so the rename itself survives a power cut).
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { Ascii } from './ascii';
import { MAX_LINE_BYTES, putLineTo, recordLineTo } from './lines';
import type { SaTable } from './table';
import type { Journal, JournalEntry } from './journal';

/** What a slice may queue before it is written (the buffer is sized for it, plus one line). */
export const REWRITE_BUFFER = 1 << 18;

/** Changes made while a rewrite runs: their bytes in order, and how many lines. */
export class Tail {
  parts: Buffer[] = [];
  lines = 0;

  push(text: Uint8Array, lines: number): void {
    this.parts.push(Buffer.from(text)); // a copy: the journal reuses its buffer
    this.lines += lines;
  }

  take(): { data: Buffer; lines: number } {
    const r = { data: Buffer.concat(this.parts), lines: this.lines };
    this.parts = [];
    this.lines = 0;
    return r;
  }
}

export class Rewrite {
  /** Changes made since the rewrite began (appended to the new file before it is adopted). */
  readonly tail = new Tail();
  private fd = -1;
  private opening: Promise<void>;
  private readonly out = new Ascii(REWRITE_BUFFER + MAX_LINE_BYTES);
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

  /** Queues one entry's line. */
  add(e: JournalEntry): void {
    this.out.grow(MAX_LINE_BYTES);
    putLineTo(this.out, e.kind, e.pub, e.server, e.host, e.a, e.b, e.rh, e.rl, e.flags, e.created);
    this.count++;
  }

  /** Queues SA record `id`'s line, formatted from the table's arrays (nothing allocated). */
  addRecord(sas: SaTable, publics: Uint32Array, id: number): void {
    this.out.grow(MAX_LINE_BYTES);
    recordLineTo(this.out, sas, publics, id);
    this.count++;
  }

  /** Bytes queued and not yet written. */
  get buffered(): number { return this.out.n; }

  /** Writes what add() queued; rejects on a write error. The buffer is reused once it resolves. */
  async drain(): Promise<void> {
    await this.opening;
    this.check();
    if (this.out.n === 0) return;
    await writeAllAsync(this.fd, this.out.view());
    this.out.reset();
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
      const t = this.tail.take();
      if (t.data.length > 0) await writeAllAsync(this.fd, t.data);
      this.check();
      await new Promise<void>((res, rej) => fs.fdatasync(this.fd, (e) => (e ? rej(e) : res())));
      this.check();
      await fs.promises.rename(this.tmp, this.j.path);
      this.check();
      await syncDir(dirname(this.j.path));
      this.check();
      // Changes that came during the rename and directory sync are still in the tail: the journal
      // writes them to the new file, in order, before anything later.
      this.j.adopt(this.fd, this.count + t.lines, this.tail.take());
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

function writeAllAsync(fd: number, buf: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => writeAll(fd, buf, (e) => (e ? reject(e) : resolve())));
}

function writeAll(fd: number, buf: Uint8Array, cb: (err: NodeJS.ErrnoException | null) => void, off = 0): void {
  if (off >= buf.length) { cb(null); return; }
  fs.write(fd, buf, off, buf.length - off, null, (err, n) => {
    if (err) cb(err);
    else if (n === 0) cb(Object.assign(new Error('short write'), { code: 'EIO' }));
    else writeAll(fd, buf, cb, off + n);
  });
}

/** Writes all of buf at the file position, synchronously (a regular file: one call in practice). */
export function writeAllSync(fd: number, buf: Uint8Array, off = 0, end = buf.length): void {
  while (off < end) {
    const n = fs.writeSync(fd, buf, off, end - off);
    if (n === 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    off += n;
  }
}

export function syncDirSync(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

async function syncDir(dir: string): Promise<void> {
  const h = await fs.promises.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try { await h.sync(); } finally { await h.close(); }
}
