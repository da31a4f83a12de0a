/** HA replication counters (sluice stats `ha`, Prometheus sluice_ha_*). */
import { REJECT_REASONS, type RejectReason } from './protocol';

export class HaCounters {
  records_sent = 0;
  records_applied = 0;
  /** Full resyncs started (active: sent; standby: received and completed). */
  resyncs_sent = 0;
  resyncs_received = 0;
  /** Streams dropped because a standby fell more than `backlog` records behind. */
  backlog_overflow = 0;
  promotions = 0;
  demotions = 0;
  readonly rejected: Record<RejectReason, number> = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;

  private lastLogged = new Map<RejectReason, number>();

  /** Counts a rejection; true when it should be logged (the first per reason per 10 s: a peer retrying twice a second must not flood the log). */
  reject(r: RejectReason): boolean {
    this.rejected[r]++;
    const now = Date.now();
    if (now - (this.lastLogged.get(r) ?? -Infinity) < 10_000) return false;
    this.lastLogged.set(r, now);
    return true;
  }

  get rejectedTotal(): number { return Object.values(this.rejected).reduce((a, b) => a + b, 0); }
}
