/**
 * The NAT stage's durable state: replays the journal into the tables at start-up (every record
 * validated, refusals counted by reason, a cap hit is an error naming the cap), and keeps the file
 * compact afterwards without ever running long on the packet thread: compaction walks the SA table
 * in slices of at most SLICE_MS between event-loop turns, formats each record's line straight from
 * the table's arrays into a reused buffer (no object per record: the garbage collector's pauses were
 * the stalls) and writes asynchronously (rewrite.ts).
 *
 * A degraded journal (ENOSPC, EROFS, EIO) is retried every RETRY_MS by a full rewrite from the
 * tables, which also restores everything that was lost meanwhile.
 */
import { Journal, type JournalOptions, type Rewrite } from './journal';
import { REWRITE_BUFFER } from './rewrite';
import type { NatConfig } from './config';
import type { NatState } from './state';
import { SaKind, F_RESTORED } from './table';
import { C, refused } from './counters';
import { SliceBudget } from './slice';

/** Longest run of compaction work between two event-loop turns. */
const SLICE_MS = 1;
/** A degraded journal is rewritten from the tables this often until it works again. */
const RETRY_MS = 10_000;

export interface PersistLog {
  warn(obj: object, msg: string): void;
  error?(obj: object, msg: string): void;
}

const CAP_NAMES: Partial<Record<C, string>> = {
  [C.SA_CAP]: 'limits.max_sas',
  [C.HOST_SA_CAP]: 'limits.max_sas_per_host',
  [C.SERVER_HOST_CAP]: 'limits.max_hosts_per_server',
  [C.HOST_CAP]: 'limits.max_hosts',
};

export class NatPersistence {
  readonly journal: Journal;
  private compaction: Promise<void> | null = null;
  private lastAttempt = 0;
  compactions = 0;
  compactionErrors = 0;
  /** Compaction's time budget per slice; its longestMs is the longest slice on the packet thread. */
  readonly slice = new SliceBudget();
  /** Journal records not restored because their public address is no longer configured. */
  droppedUnconfigured = 0;

  constructor(private readonly state: NatState, cfg: NatConfig['journal'], path: string,
    private readonly log?: PersistLog) {
    const opts: JournalOptions = {
      slack: cfg.compact_slack,
      sync: cfg.sync,
      intervalMs: cfg.sync_interval_ms,
      onError: (err, what) => this.alarm({ journal: path, op: what, code: err.code, err: err.message },
        'NAT journal degraded: changes are no longer saved (packets still flow); retrying by rewriting it from memory'),
    };
    this.journal = new Journal(path, opts);
  }

  private alarm(obj: object, msg: string): void {
    if (this.log?.error) this.log.error(obj, msg);
    else this.log?.warn(obj, msg);
  }

  /** Replays the journal into the tables, opens it for appending and starts a compaction. */
  restore(now: number): void {
    const j = this.journal;
    const s = this.state;
    const entries = j.load();
    const r = j.replay;
    if (j.badLines > 0) this.log?.warn({ journal: j.path, refused: r.refused, lines: r.lines }, 'NAT journal: lines refused at replay');
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const pub = s.pubIndexOf(e.pub >>> 0);
      if (pub < 0) { this.droppedUnconfigured++; continue; }
      let h = s.hosts.find(e.host >>> 0);
      if (h < 0) h = s.bindHost(e.host >>> 0, pub, now);
      if (h < 0) throw this.capError(C.HOST_CAP, i, entries.length);
      if (s.hosts.pub[h] !== pub) { this.droppedUnconfigured++; continue; }
      if (s.sas.find(e.kind, pub, e.server >>> 0, e.a >>> 0, e.b >>> 0) >= 0) continue;
      const id = s.addSa(e.kind, pub, e.server >>> 0, h, e.a >>> 0, e.b >>> 0, (e.flags | F_RESTORED) & 0xff, now, false, e.created);
      if (id < 0) throw this.capError(refused(id), i, entries.length);
      s.sas.rh[id] = e.rh >>> 0;
      s.sas.rl[id] = e.rl >>> 0;
    }
    if (this.droppedUnconfigured > 0) {
      this.log?.warn({ journal: j.path, records: this.droppedUnconfigured }, 'NAT journal: records for public addresses no longer configured were not restored');
    }
    j.openAppend();
    s.journal = j;
    this.compact();
  }

  private capError(c: C, i: number, n: number): Error {
    const cap = CAP_NAMES[c] ?? COUNTER_NAME(c);
    const limit = cap.startsWith('limits.') ? this.state.cfg.limits[cap.slice(7) as keyof NatConfig['limits']] : '?';
    return new Error(`NAT journal ${this.journal.path}: record ${i + 1} of ${n} hits nat.${cap} (${limit}); `
      + `raise nat.${cap} or move the journal aside (the file was left untouched)`);
  }

  /**
   * Housekeeping, from the stage's tick(): compaction when due, retry when degraded. True when it
   * started one (its first slice ran in this turn: the caller leaves other housekeeping to the next).
   */
  tick(): boolean {
    const j = this.journal;
    if (this.compaction) return false;
    if (j.degraded) {
      if (Date.now() - Math.max(this.lastAttempt, j.degradedAt) < RETRY_MS) return false;
    } else if (!j.needsCompaction(this.state.sas.count)) {
      return false;
    }
    this.compact();
    return this.compaction !== null;
  }

  get compacting(): boolean { return this.compaction !== null; }

  /** Starts an asynchronous compaction (no-op while one runs); the promise settles when it ends. */
  compact(): Promise<void> {
    if (this.compaction) return this.compaction;
    const rw = this.journal.beginRewrite();
    if (!rw) return Promise.resolve();
    this.lastAttempt = Date.now();
    this.compaction = this.walk(rw).then(
      () => { this.compactions++; },
      (e: NodeJS.ErrnoException) => {
        this.compactionErrors++;
        if (e.code !== 'EABORTED') this.alarm({ journal: this.journal.path, code: e.code, err: e.message }, 'NAT journal compaction failed');
      },
    ).finally(() => { this.compaction = null; });
    return this.compaction;
  }

  private async walk(rw: Rewrite): Promise<void> {
    try {
      await this.walkSlices(rw);
    } catch (e) {
      rw.abort();
      throw e;
    }
  }

  private async walkSlices(rw: Rewrite): Promise<void> {
    const sas = this.state.sas;
    const publics = this.state.publics;
    // Records created after this point (at any id) are in the rewrite's tail.
    const top = sas.top;
    let id = 0;
    const slice = this.slice;
    while (id < top) {
      slice.start(SLICE_MS);
      // A slice: records until SLICE_MS passed (slice.ts) or the buffer is full. Lines are
      // formatted straight from the table's arrays: no object or string per record (lines.ts).
      while (id < top && rw.buffered < REWRITE_BUFFER) {
        const k = sas.kind[id];
        id++;
        if (k !== SaKind.FREE && k !== SaKind.ESP_OUT) {
          rw.addRecord(sas, publics, id - 1);
          if (slice.step()) break;
        }
      }
      slice.end();
      await rw.drain();
      await new Promise<void>((r) => setImmediate(r));
    }
    await rw.finish();
  }

  stats(): Record<string, unknown> {
    const j = this.journal;
    return {
      path: j.path, degraded: j.degraded ? 1 : 0, last_error: j.lastError || undefined, write_errors: j.writeErrors,
      lost_changes: j.lost, fsyncs: j.fsyncs, append_writes: j.appendWrites, compactions: this.compactions, compaction_errors: this.compactionErrors,
      compacting: this.compacting ? 1 : 0,
      replay: { lines: j.replay.lines, records: j.replay.records, refused: j.replay.refused, not_configured: this.droppedUnconfigured },
    };
  }

  /** Waits for queued lines, then closes the file (a compaction in progress is abandoned). */
  async close(): Promise<void> {
    await this.journal.flushed();
    this.journal.close();
  }
}

import { COUNTER_DEFS } from './counters';
function COUNTER_NAME(c: C): string { return COUNTER_DEFS[c]?.[0] ?? String(c); }

