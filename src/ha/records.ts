/**
 * The NAT's journal records as replication carries them, and how a standby applies them.
 *
 * Lines are the journal's own format (`P kind public server host a b rh rl flags created` and
 * `D kind public server a b`, src/nat/journal.ts) and are checked by the journal's replay
 * validation (src/nat/replay.ts) before anything is applied, so a record the active could not have
 * journaled is refused here too.
 *
 * A standby applies records into its NAT tables as they come (listable with `sluice sa`, written to
 * its own journal). The learning books' owed counts ride on the IKE records' flags; they are
 * rebuilt exactly at promotion by re-adding every record the way a journal replay does
 * (`rebuildAsRestored`), so an active that took over learns like one that restarted from its journal.
 */
import type { JournalEntry } from '../nat/journal';
import { parseJournalLine, type ReplayReason } from '../nat/replay';
import type { NatState } from '../nat/state';
import { SaKind, F_RESTORED } from '../nat/table';

export function putLine(e: JournalEntry): string {
  return `P ${e.kind} ${e.pub >>> 0} ${e.server >>> 0} ${e.host >>> 0} ${e.a >>> 0} ${e.b >>> 0} ${e.rh >>> 0} ${e.rl >>> 0} ${e.flags & 0xff} ${Math.max(0, Math.round(e.created))}\n`;
}

export function delLine(kind: number, pub: number, server: number, a: number, b: number): string {
  return `D ${kind} ${pub >>> 0} ${server >>> 0} ${a >>> 0} ${b >>> 0}\n`;
}

export const APPLY_SKIPS = [
  /** The record's public address is not in this gateway's nat.public (configs differ). */
  'not_configured',
  /** The host is bound to another public address here than on the active (configs differ). */
  'host_elsewhere',
  /** A cap of this gateway refused the record (limits smaller than the active's). */
  'cap',
] as const;
export type ApplySkip = (typeof APPLY_SKIPS)[number];

export class StandbyTables {
  /** Journal lines refused by replay validation, by reason. */
  readonly refused: Partial<Record<ReplayReason, number>> = {};
  readonly skipped: Partial<Record<ApplySkip, number>> = {};
  applied = 0;
  /** Per record id: the resync that last named it (a typed array, not a set of keys: no garbage). */
  private named = new Uint32Array(1024);
  private epoch = 0;
  private inResync = false;

  constructor(public state: NatState) {}

  get resyncing(): boolean { return this.inResync; }

  private mark(id: number): void {
    if (!this.inResync) return;
    if (id >= this.named.length) {
      const n = new Uint32Array(Math.max(id + 1, this.named.length * 2));
      n.set(this.named);
      this.named = n;
    }
    this.named[id] = this.epoch;
  }

  /** Applies one batch of newline-terminated lines; returns false at the first refused line. */
  applyText(text: string, now: number, wall: number): ReplayReason | null {
    let start = 0;
    let nl: number;
    while ((nl = text.indexOf('\n', start)) >= 0) {
      const r = parseJournalLine(text.slice(start, nl), wall);
      start = nl + 1;
      if (typeof r === 'string') { this.refused[r] = (this.refused[r] ?? 0) + 1; return r; }
      if (r.put) this.put(r.entry, now); else this.del(r.entry);
      this.applied++;
    }
    if (start !== text.length) { this.refused.cut = (this.refused.cut ?? 0) + 1; return 'cut'; }
    return null;
  }

  private skip(why: ApplySkip): void { this.skipped[why] = (this.skipped[why] ?? 0) + 1; }

  put(e: JournalEntry, now: number): void {
    const s = this.state;
    const pub = s.pubIndexOf(e.pub);
    if (pub < 0) { this.skip('not_configured'); return; }
    let h = s.hosts.find(e.host);
    if (h < 0) h = s.bindHost(e.host, pub, now);
    if (h < 0) { this.skip('cap'); return; }
    if (s.hosts.pub[h] !== pub) { this.skip('host_elsewhere'); return; }
    s.hosts.last[h] = now;
    const sas = s.sas;
    let id = sas.find(e.kind, pub, e.server, e.a, e.b);
    if (id >= 0 && sas.host[id] !== e.host) { s.removeSa(id); id = -1; }
    if (id < 0) {
      // Journaled once, below, with every field set.
      id = s.addSa(e.kind, pub, e.server, h, e.a, e.b, (e.flags | F_RESTORED) & 0xff, now, false, e.created);
      if (id < 0) { this.skip('cap'); return; }
    } else {
      sas.flags[id] = (e.flags | F_RESTORED) & 0xff;
      sas.created[id] = e.created;
    }
    sas.rh[id] = e.rh; sas.rl[id] = e.rl; sas.last[id] = now;
    this.mark(id);
    s.journalPut(id);
  }

  del(e: JournalEntry): void {
    const s = this.state;
    const pub = s.pubIndexOf(e.pub);
    if (pub < 0) return;
    const id = s.sas.find(e.kind, pub, e.server, e.a, e.b);
    if (id >= 0) s.removeSa(id);
  }

  beginResync(): void {
    this.inResync = true;
    this.epoch = (this.epoch + 1) >>> 0 || 1;
  }

  /** Removes every journaled record the resync did not name (one pass over typed arrays); returns how many. */
  endResync(): number {
    if (!this.inResync) return 0;
    this.inResync = false;
    const s = this.state;
    const sas = s.sas;
    const named = this.named;
    let removed = 0;
    for (let id = 0; id < sas.top; id++) {
      const k = sas.kind[id];
      if (k !== SaKind.ESP_IN && k !== SaKind.IKE) continue;
      if (id >= named.length || named[id] !== this.epoch) { s.removeSa(id); removed++; }
    }
    return removed;
  }

  abortResync(): void { this.inResync = false; }
}

/** Every journaled record, in id order. */
export function journaledEntries(s: NatState): JournalEntry[] {
  const out: JournalEntry[] = [];
  const sas = s.sas;
  for (let id = 0; id < sas.top; id++) {
    const k = sas.kind[id];
    if (k === SaKind.ESP_IN || k === SaKind.IKE) out.push(s.journalEntry(id));
  }
  return out;
}

/**
 * Promotion: the learning books are made exactly those of a journal replay. Their only replicated
 * part, the owed counts, rides on the IKE records' flags (a replay takes the largest count of a
 * link's IKE records): so every IKE record is removed and added again as a replay adds it
 * (F_RESTORED), then learning.afterRestore() runs (a host with an IKE SA and no inbound ESP SA is
 * owed one; lone pairs are paired). Inbound ESP records stay where they are (their books entries
 * were kept up to date as they were applied). Outbound ESP records (never replicated; stale on a
 * demoted node) go: they are relearned from the first outbound packet. Every record's idle timer
 * starts now. The journal file is detached meanwhile (the caller compacts it afterwards).
 * Returns the number of replicated records kept.
 */
export function rebuildAsRestored(s: NatState, now: number): number {
  const journal = s.journal;
  const observer = s.observer;
  s.journal = null;
  s.observer = null;
  try {
    const sas = s.sas;
    const ikes: JournalEntry[] = [];
    for (let id = 0; id < sas.top; id++) {
      const k = sas.kind[id];
      if (k === SaKind.ESP_OUT) s.removeSa(id);
      else if (k === SaKind.IKE) { ikes.push(s.journalEntry(id)); s.removeSa(id); }
    }
    for (const e of ikes) {
      const pub = s.pubIndexOf(e.pub);
      const h = s.hosts.find(e.host);
      if (pub < 0 || h < 0) continue;
      const id = s.addSa(e.kind, pub, e.server, h, e.a, e.b, (e.flags | F_RESTORED) & 0xff, now, false, e.created);
      if (id < 0) continue;
      sas.rh[id] = e.rh; sas.rl[id] = e.rl;
    }
    let n = 0;
    for (let id = 0; id < sas.top; id++) {
      if (sas.kind[id] === SaKind.FREE) continue;
      sas.last[id] = now;
      n++;
    }
    for (let h = 0; h < s.hosts.top; h++) if (s.hosts.live[h]) s.hosts.last[h] = now;
    s.learning.afterRestore();
    return n;
  } finally {
    s.journal = journal;
    s.observer = observer;
  }
}
