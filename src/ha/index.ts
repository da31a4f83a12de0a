/**
 * High availability: the NAT's records replicated from the active gateway to its standbys, and the
 * role switch keepalived drives (`sluice ha promote|demote`). docs/ha.md explains the design, what
 * a failover costs and how to deploy it.
 *
 * Roles:
 * - active: the NAT stage works as usual; every journaled change is streamed to every peer (sender.ts).
 * - standby: the NAT stage is passive (drops what it owns, learns and expires nothing); records
 *   from the active are applied into its tables (receiver.ts, records.ts). It sends nothing but
 *   replication acknowledgements.
 * Promotion rebuilds the learning books from the replicated records exactly as a journal replay
 * does; demotion drops held packets and outbound records and waits for the new active's resync.
 */
import { readFileSync } from 'node:fs';
import type { NatStage } from '../nat/stage';
import type { RecordObserver } from '../nat/state';
import { SaKind } from '../nat/table';
import type { JournalEntry } from '../nat/journal';
import type { HaConfig } from './config';
import { HaCounters } from './counters';
import { parseKey } from './protocol';
import { StandbyTables, delLine, putLine, rebuildAsRestored } from './records';
import { Receiver } from './receiver';
import { Sender } from './sender';

/** IKE and inbound ESP records (what replication carries). */
function journaledCount(nat: NatStage): number {
  const sas = nat.state.sas;
  let n = 0;
  for (let id = 0; id < sas.top; id++) if (sas.kind[id] === SaKind.ESP_IN || sas.kind[id] === SaKind.IKE) n++;
  return n;
}

export type Role = 'active' | 'standby';

interface Log { info(o: object, m: string): void; warn(o: object, m: string): void }

export class Ha implements RecordObserver {
  readonly counters = new HaCounters();
  role: Role;
  roleSince = Date.now();
  /** Wall-clock ms of the last promotion (0: never). */
  lastFailover = 0;
  /** How long the last promotion's rebuild of the tables took (ms), and how many records it kept. */
  lastPromoteMs = 0;
  lastPromoteRecords = 0;
  lastPromoteWhileResyncing = false;
  private nat: NatStage | null = null;
  private tables: StandbyTables | null = null;
  private readonly senders: Sender[];
  private readonly receiver: Receiver;
  private readonly key: Buffer;

  constructor(readonly cfg: HaConfig, private readonly log: Log, key?: Buffer) {
    this.key = key ?? Ha.readKey(cfg.key_file);
    this.role = cfg.role === 'active' ? 'active' : 'standby';
    const base = { key: this.key, heartbeatMs: cfg.heartbeat_ms, counters: this.counters, log };
    this.senders = cfg.peers.map((p) => new Sender(p, {
      ...base, backlog: cfg.backlog, reconnectMs: cfg.reconnect_ms, state: () => this.nat?.state ?? null,
    }));
    this.receiver = new Receiver({ ...base, tables: () => (this.role === 'standby' ? this.tables : null), now: () => this.nat?.state.now() ?? 0 });
  }

  static readKey(path: string): Buffer {
    let text: Buffer;
    try {
      text = readFileSync(path);
    } catch (e) {
      throw new Error(`ha.key_file ${path}: cannot read the shared key (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); `
        + `create it on both gateways, e.g. head -c 48 /dev/urandom | base64 > ${path}; chmod 600 ${path}`);
    }
    return parseKey(text, path);
  }

  async start(): Promise<void> {
    await this.receiver.listen(this.cfg.listen);
    if (this.role === 'active') for (const s of this.senders) s.start();
    this.log.info({ role: this.role, listen: this.cfg.listen, peers: this.cfg.peers }, 'HA started');
  }

  get listenAddress() { return this.receiver.address; }

  /** Longest slices of work between event-loop turns: resync walk (active), record apply (standby). */
  get longestSlices(): { walkMs: number; applyMs: number } {
    return { walkMs: Math.max(0, ...this.senders.map((s) => s.longestSliceMs)), applyMs: this.receiver.longestApplyMs };
  }

  /** The NAT stage to replicate (again after a reload that rebuilt it). */
  attach(nat: NatStage | null): void {
    if (this.nat === nat) return;
    if (this.nat) this.nat.state.observer = null;
    this.nat = nat;
    this.tables = nat ? new StandbyTables(nat.state) : null;
    this.applyRole();
  }

  private applyRole(): void {
    const nat = this.nat;
    if (!nat) return;
    nat.passive = this.role === 'standby';
    nat.state.observer = this.role === 'active' ? this : null;
  }

  // RecordObserver: the active's changes, to every stream.
  put(e: JournalEntry): void {
    const l = putLine(e);
    for (const s of this.senders) s.record(l);
  }

  del(kind: number, pub: number, server: number, a: number, b: number): void {
    const l = delLine(kind, pub, server, a, b);
    for (const s of this.senders) s.record(l);
  }

  promote(): Record<string, unknown> {
    if (this.role === 'active') return { ...this.status(), changed: false };
    const t0 = performance.now();
    this.lastPromoteWhileResyncing = this.tables?.resyncing ?? false;
    this.receiver.dropAll();
    this.tables?.abortResync();
    this.role = 'active';
    this.roleSince = Date.now();
    this.lastFailover = Date.now();
    this.counters.promotions++;
    const nat = this.nat;
    if (nat) {
      this.lastPromoteRecords = rebuildAsRestored(nat.state, nat.state.now());
      void nat.compact();
    }
    this.applyRole();
    this.lastPromoteMs = performance.now() - t0;
    for (const s of this.senders) s.start();
    this.log.warn({ records: this.lastPromoteRecords, ms: Math.round(this.lastPromoteMs * 10) / 10, incompleteResync: this.lastPromoteWhileResyncing },
      'HA: promoted to active');
    return { ...this.status(), changed: true };
  }

  demote(): Record<string, unknown> {
    if (this.role === 'standby') return { ...this.status(), changed: false };
    for (const s of this.senders) s.stop();
    this.role = 'standby';
    this.roleSince = Date.now();
    this.counters.demotions++;
    const nat = this.nat;
    if (nat) {
      nat.state.observer = null;
      nat.state.learning.dropAllHeld();
      const sas = nat.state.sas;
      for (let id = 0; id < sas.top; id++) if (sas.kind[id] === SaKind.ESP_OUT) nat.state.removeSa(id);
      this.tables = new StandbyTables(nat.state);
    }
    this.applyRole();
    this.log.warn({}, 'HA: demoted to standby');
    return { ...this.status(), changed: true };
  }

  status(): Record<string, unknown> {
    const c = this.counters;
    const now = Date.now();
    return {
      role: this.role, configured_role: this.cfg.role, role_since: new Date(this.roleSince).toISOString(),
      last_failover: this.lastFailover ? new Date(this.lastFailover).toISOString() : null,
      last_promote_ms: this.lastPromoteMs, last_promote_records: this.lastPromoteRecords,
      last_promote_incomplete_resync: this.lastPromoteWhileResyncing,
      nat: this.nat ? { sas: this.nat.state.sas.count, records: journaledCount(this.nat), passive: this.nat.passive } : null,
      peers: this.senders.map((s) => s.stats()),
      stream: this.role === 'standby' ? {
        connected: this.receiver.streaming, from: this.receiver.peer || null,
        resyncing: this.tables?.resyncing ?? false,
        last_message_age_ms: this.receiver.lastMessageAt ? now - this.receiver.lastMessageAt : null,
        lag_ms: this.receiver.lagMs,
        longest_apply_ms: Math.round(this.receiver.longestApplyMs * 100) / 100,
        last_resync: this.receiver.lastResyncAt ? new Date(this.receiver.lastResyncAt).toISOString() : null,
      } : null,
      counters: {
        records_sent: c.records_sent, records_applied: c.records_applied, resyncs_sent: c.resyncs_sent,
        resyncs_received: c.resyncs_received, backlog_overflow: c.backlog_overflow, promotions: c.promotions, demotions: c.demotions,
      },
      rejected: { ...c.rejected },
      apply_refused: { ...(this.tables?.refused ?? {}) },
      apply_skipped: { ...(this.tables?.skipped ?? {}) },
    };
  }

  /** Prometheus gauges (sluice_ha_*): docs/operator.md. */
  gauges(): { name: string; help: string; value: number }[] {
    const c = this.counters;
    const lag = this.role === 'active'
      ? Math.max(0, ...this.senders.map((s) => s.rttMs))
      : this.receiver.lagMs;
    const g = (name: string, help: string, value: number) => ({ name: `ha_${name}`, help, value });
    return [
      g('active', '1 while this gateway is the HA active, 0 while standby', this.role === 'active' ? 1 : 0),
      g('replication_lag_ms', 'active: largest heartbeat round trip to a standby; standby: age of the last heartbeat on arrival', lag),
      g('unacked_records', 'records sent to standbys and not yet acknowledged (largest over peers)', Math.max(0, ...this.senders.map((s) => s.sent - s.acked))),
      g('records_sent', 'records streamed to standbys (all peers)', c.records_sent),
      g('records_applied', 'records applied from the active', c.records_applied),
      g('resyncs_sent', 'full resyncs started toward standbys', c.resyncs_sent),
      g('resyncs_received', 'full resyncs completed from the active', c.resyncs_received),
      g('backlog_overflow', 'streams dropped because a standby fell more than ha.backlog records behind', c.backlog_overflow),
      g('promotions', 'promotions to active', c.promotions),
      g('last_failover_seconds', 'Unix time of the last promotion (0: never)', this.lastFailover / 1000),
      ...Object.entries(c.rejected).map(([r, v]) => g(`rejected_${r}`, `replication messages rejected: ${r}`, v)),
    ];
  }

  async close(): Promise<void> {
    for (const s of this.senders) s.stop();
    if (this.nat) this.nat.state.observer = null;
    await this.receiver.close();
  }
}
