/**
 * NAT state: SA and host tables, limits, counters and the journal. Who owns an SPI that was never
 * seen in cleartext is learning.ts's business; the stage (stage.ts) reads packets and calls in here.
 */
import { SaKind, SaTable, HostTable, F_LEARNED } from './table';
import { Learning } from './learning';
import { Journal, type JournalEntry } from './journal';
import type { NatConfig } from './config';
import type { Decision, StageServices } from '../engine/stage';
import { C, COUNTER_DEFS, refusal } from './counters';
import { sharedLearningMemory, type SharedNatMemory } from './shared';

/** What happened to an SA record (`sluice sa --events`). */
export type SaEventType = 'new' | 'learned' | 'paired' | 'expired' | 'deleted' | 'replaced';
/** Told every journaled change whether or not a journal file is kept (HA replication, src/ha). */
export interface RecordObserver {
  put(e: JournalEntry): void;
  del(kind: number, pub: number, server: number, a: number, b: number): void;
}

let nextSharedId = 1;

export class NatState {
  readonly sas: SaTable;
  readonly hosts: HostTable;
  readonly publics: Uint32Array;
  readonly hostsPerPub: Int32Array;
  readonly learning: Learning;
  /** server → (host → SA count), for max_hosts_per_server (touched on SA creation/removal only). */
  private readonly serverHosts = new Map<number, Map<number, number>>();
  readonly counters = new Float64Array(COUNTER_DEFS.length);
  private ids = new Int32Array(COUNTER_DEFS.length);
  services: StageServices | null = null;
  journal: Journal | null = null;
  /** `sluice sa --events` (src/nat/events.ts): set while someone listens; called on SA changes, never per packet. */
  onSaEvent: ((event: SaEventType, id: number) => void) | null = null;
  observer: RecordObserver | null = null;

  /** Learning's shared mirrors (turns running, links owed) when the tables are shared with workers. */
  readonly sharedLearning: { turns: Int32Array; linkOwed: Int32Array } | null;

  /** `shared`: the SA table lives in SharedArrayBuffers for worker threads (workers: N > 1). */
  constructor(readonly cfg: NatConfig, publics: number[], opts: { shared?: boolean } = {}) {
    const shared = opts.shared ?? false;
    this.sas = new SaTable(cfg.limits.max_sas, 1024, { shared });
    this.sharedLearning = shared ? sharedLearningMemory(cfg.limits.max_sas) : null;
    this.hosts = new HostTable(cfg.limits.max_hosts);
    this.publics = Uint32Array.from(publics);
    this.hostsPerPub = new Int32Array(publics.length);
    this.learning = new Learning(this);
  }

  private readonly sharedId = nextSharedId++;

  /** What worker threads map (throws unless constructed shared). */
  sharedMemory(): SharedNatMemory {
    if (!this.sharedLearning) throw new Error('NatState.sharedMemory: the NAT tables are not shared');
    return { id: this.sharedId, sas: this.sas.sharedArrays(), ...this.sharedLearning, publics: Array.from(this.publics) };
  }

  now(): number { return this.services?.now() ?? 0; }

  init(services: StageServices): void {
    this.services = services;
    for (let i = 0; i < COUNTER_DEFS.length; i++) this.ids[i] = services.reason(COUNTER_DEFS[i][0], COUNTER_DEFS[i][1]);
  }

  count(c: C): void {
    this.counters[c]++;
    this.services?.count(this.ids[c]);
  }

  drop(d: Decision, c: C): void {
    this.counters[c]++;
    d.drop(this.ids[c]);
  }

  pubIndexOf(addr: number): number {
    const p = this.publics;
    for (let i = 0; i < p.length; i++) if (p[i] === addr) return i;
    return -1;
  }

  /** Host id for a LAN address, creating it bound to the least-used public address; -1 at the cap. */
  host(addr: number, now: number): number {
    let h = this.hosts.find(addr);
    if (h >= 0) { this.hosts.last[h] = now; return h; }
    let best = 0;
    for (let i = 1; i < this.hostsPerPub.length; i++) if (this.hostsPerPub[i] < this.hostsPerPub[best]) best = i;
    return this.bindHost(addr, best, now);
  }

  bindHost(addr: number, pub: number, now: number): number {
    const h = this.hosts.add(addr, pub, now);
    if (h >= 0) this.hostsPerPub[pub]++;
    return h;
  }

  /**
   * Creates an SA record for host id h after the limits; -1 refusal(counter) when refused (the caller counts).
   * `journal` is false for records that are cheap to relearn from cleartext (outbound ESP).
   */
  addSa(kind: SaKind, pub: number, server: number, h: number, a: number, b: number, flags: number,
    now: number, journal: boolean, created = Date.now()): number {
    if (this.hosts.sas[h] >= this.cfg.limits.max_sas_per_host) return refusal(C.HOST_SA_CAP);
    const addr = this.hosts.addr[h];
    let perServer = this.serverHosts.get(server | 0);
    const n = perServer?.get(addr | 0) ?? 0;
    if (n === 0 && (perServer?.size ?? 0) >= this.cfg.limits.max_hosts_per_server) {
      return refusal(C.SERVER_HOST_CAP);
    }
    const id = this.sas.add(kind, pub, server, addr, a, b, now, created, flags);
    if (id < 0) return refusal(C.SA_CAP);
    if (!perServer) { perServer = new Map(); this.serverHosts.set(server | 0, perServer); }
    perServer.set(addr | 0, n + 1);
    this.hosts.sas[h]++;
    this.learning.recordAdded(id);
    this.count(C.SA_CREATED);
    if (journal) this.journalPut(id);
    if (this.onSaEvent !== null && (flags & F_LEARNED) === 0) this.onSaEvent('new', id); // learned ones: learning.ts
    return id;
  }

  removeSa(id: number, why: 'expired' | 'deleted' | 'replaced' = 'deleted'): void {
    const s = this.sas;
    if (s.kind[id] === SaKind.FREE) return;
    this.onSaEvent?.(why, id);
    const h = this.hosts.find(s.host[id]);
    if (h >= 0) this.hosts.sas[h]--;
    const perServer = this.serverHosts.get(s.server[id] | 0);
    if (perServer) {
      const n = (perServer.get(s.host[id] | 0) ?? 1) - 1;
      if (n <= 0) perServer.delete(s.host[id] | 0); else perServer.set(s.host[id] | 0, n);
      if (perServer.size === 0) this.serverHosts.delete(s.server[id] | 0);
    }
    if (s.kind[id] !== SaKind.ESP_OUT) {
      this.journal?.del(s.kind[id], this.publics[s.pub[id]], s.server[id], s.a[id], s.b[id]);
      this.observer?.del(s.kind[id], this.publics[s.pub[id]], s.server[id], s.a[id], s.b[id]);
    }
    this.learning.recordRemoved(id);
    s.remove(id);
  }

  journalEntry(id: number): JournalEntry {
    const s = this.sas;
    return {
      kind: s.kind[id], pub: this.publics[s.pub[id]], server: s.server[id], host: s.host[id], a: s.a[id], b: s.b[id],
      rh: s.rh[id], rl: s.rl[id], flags: s.flags[id], created: s.created[id],
    };
  }

  journalPut(id: number): void {
    if (this.journal === null && this.observer === null) return;
    const e = this.journalEntry(id);
    this.journal?.put(e);
    this.observer?.put(e);
  }

}
