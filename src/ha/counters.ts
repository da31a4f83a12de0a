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

  reject(r: RejectReason): void { this.rejected[r]++; }

  get rejectedTotal(): number { return Object.values(this.rejected).reduce((a, b) => a + b, 0); }
}
