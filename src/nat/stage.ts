/**
 * The NAT stage: per packet, find or learn the mapping and rewrite one address.
 *
 * Outbound (LAN host → server), queued at mangle POSTROUTING (after routing: rewriting the source
 * before routing would make the kernel see its own address arriving from the LAN, a martian):
 *   source → the host's public address; UDP ports 500/4500 untouched; IKE records (server, ISPI) →
 *   host and, from responses, the RSPI; ESP records (server, SPI) for listing; NAT keepalives pass.
 * Inbound (server → public), queued at mangle PREROUTING (before routing, so the new destination is
 *   routed to the LAN): ESP by (public, server, SPI), IKE by (public, server, ISPI); unknown SPIs go
 *   through learning.inbound(); keepalives are counted and dropped.
 * SA-creating IKE messages (IKEv2 IKE_AUTH / CREATE_CHILD_SA, IKEv1 Quick Mode) pass
 * learning.exchange(); outbound ESP of a host owed an SA, on an SA whose partner is not confirmed,
 * passes learning.outboundEsp().
 * The two directions of a CHILD_SA, once paired, keep each other alive (one-way traffic).
 */
import { Kind } from '../packet/classify';
import { ip4 as ipv4ToNumber } from '../packet/bytes';
import { HOOK_POSTROUTING, HOOK_PREROUTING, type Decision, type PacketContext, type Stage, type StageServices } from '../engine/stage';
import type { NatConfig } from './config';
import { NatState } from './state';
import { SaKind, F_CONFIRMED } from './table';
import { IdleSweep } from './idle-sweep';
import { C, refusal, refused } from './counters';
import { HELD } from './learning';
import { NatPersistence, type PersistLog } from './persist';
import { rewriteDst4, rewriteSrc4 } from '../packet/rewrite';
import { natCommand } from './commands';
import { explainNat } from './explain';
import { resolve } from 'node:path';

const IKEV2_IKE_SA_INIT = 34;
const IKEV2_IKE_AUTH = 35;
const IKEV2_CREATE_CHILD_SA = 36;
const IKEV1_MAIN = 2;
const IKEV1_AGGRESSIVE = 4;
const IKEV1_QUICK = 32;
/** IKEv2 header flag: this message is a response (RFC 7296 §3.1). */
const IKEV2_F_RESPONSE = 0x20;
export function parsePrefix(s: string): [number, number] {
  const [a, l] = s.split('/');
  const len = l === undefined ? 32 : Number(l);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return [(ipv4ToNumber(a) & mask) >>> 0, mask];
}

export interface NatStageOptions {
  /** Wall clock for SA creation times (tests). */
  wallClock?: () => number;
  /** Directory a relative journal.path is resolved against (state_dir, default /var/lib/sluice). */
  stateDir?: string;
  /** Where journal errors (degraded mode) and replay refusals are reported. */
  log?: PersistLog;
  /** The SA table in shared memory for worker threads (workers: N > 1; this stage then runs on the owner thread). */
  shared?: boolean;
}

export class NatStage implements Stage {
  readonly name = 'nat';
  readonly failure = 'closed'; // a throw or an expired hold drops: nothing leaves untranslated
  readonly state: NatState;
  private readonly anyServer: boolean;
  private readonly serverNet: Uint32Array;
  private readonly serverMask: Uint32Array;
  private readonly fwdNet: Uint32Array;
  private readonly fwdMask: Uint32Array;
  private readonly fwdHost: Uint32Array;
  private services!: StageServices;
  /** Journal replay and compaction (null: journal.path is null, memory only). */
  persist: NatPersistence | null = null;
  /**
   * HA standby (src/ha): packets the NAT owns are dropped and counted, nothing is learned, probed or
   * expired here; the records come from the active's replication stream.
   */
  get passive(): boolean { return this.passiveRole; }
  set passive(on: boolean) {
    this.passiveRole = on;
    // Worker threads' fast path reads this too (shared.ts): a standby's workers must not translate.
    const sh = this.state.sharedLearning;
    if (sh) Atomics.store(sh.turns, 1, on ? 1 : 0);
  }
  private passiveRole = false;
  /** Removes idle SAs and hosts, a slice per tick (idle-sweep.ts). */
  readonly idleSweep: IdleSweep;

  constructor(readonly cfg: NatConfig, private readonly opts: NatStageOptions = {}) {
    this.state = new NatState(cfg, cfg.public.map(ipv4ToNumber), { shared: opts.shared });
    this.anyServer = cfg.servers === 'any';
    const servers = cfg.servers === 'any' ? [] : cfg.servers.map(parsePrefix);
    this.serverNet = Uint32Array.from(servers.map((s) => s[0]));
    this.serverMask = Uint32Array.from(servers.map((s) => s[1]));
    const fw = cfg.static_forwards.map((f) => [...parsePrefix(f.server), ipv4ToNumber(f.host)]);
    this.fwdNet = Uint32Array.from(fw.map((f) => f[0]));
    this.fwdMask = Uint32Array.from(fw.map((f) => f[1]));
    this.fwdHost = Uint32Array.from(fw.map((f) => f[2]));
    this.idleSweep = new IdleSweep(this.state, cfg.timeouts);
  }

  init(services: StageServices): void {
    this.services = services;
    this.state.init(services);
    if (this.cfg.journal.path !== null && this.state.journal === null) {
      this.persist = new NatPersistence(this.state, this.cfg.journal, resolve(this.opts.stateDir ?? '/var/lib/sluice', this.cfg.journal.path), this.opts.log);
      this.persist.restore(services.now());
      this.state.learning.afterRestore();
    }
  }

  private wall(): number { return this.opts.wallClock ? this.opts.wallClock() : Date.now(); }

  /** Starts an asynchronous journal compaction (see persist.ts); settles when it is on disk. */
  compact(): Promise<void> {
    return this.persist?.compact() ?? Promise.resolve();
  }

  serverAllowed(addr: number): boolean {
    if (this.anyServer) return true;
    for (let i = 0; i < this.serverNet.length; i++) if (((addr & this.serverMask[i]) >>> 0) === this.serverNet[i]) return true;
    return false;
  }

  process(pkt: PacketContext, d: Decision): void {
    const info = pkt.info;
    if (info.reason !== 0 || info.ipVersion !== 4) return;
    const kind = info.kind;
    if (kind !== Kind.ESP && kind !== Kind.ESP_IN_UDP && kind !== Kind.IKE && kind !== Kind.NAT_KEEPALIVE) return;
    const s = this.state;
    if (pkt.hook === HOOK_PREROUTING) {
      const pub = s.pubIndexOf(info.dst);
      if (pub < 0) return;
      if (this.passive) { s.drop(d, C.HA_STANDBY); return; }
      if (info.isFragment) { s.drop(d, C.FRAGMENT); return; }
      this.inbound(pkt, d, pub);
    } else if (pkt.hook === HOOK_POSTROUTING) {
      if (s.pubIndexOf(info.src) >= 0 || !this.serverAllowed(info.dst)) return;
      if (this.passive) { s.drop(d, C.HA_STANDBY); return; }
      if (info.isFragment) { s.drop(d, C.FRAGMENT); return; }
      this.outbound(pkt, d);
    }
  }

  /** For `sluice trace` (src/nat/explain.ts): mapping, SA record, learning state. */
  explain(pkt: PacketContext): Record<string, unknown> {
    return explainNat(this, pkt);
  }

  private static saCreating(version: number, exchange: number): boolean {
    return version === 2 ? (exchange === IKEV2_IKE_AUTH || exchange === IKEV2_CREATE_CHILD_SA) : exchange === IKEV1_QUICK;
  }

  private outbound(pkt: PacketContext, d: Decision): void {
    const info = pkt.info;
    const s = this.state;
    const now = this.services.now();
    const server = info.dst;
    const h = s.host(info.src, now);
    if (h < 0) { s.drop(d, C.HOST_CAP); return; }
    const pub = s.hosts.pub[h];
    const kind = info.kind;
    if (kind === Kind.IKE) {
      const ih = info.ikeIspiHi, il = info.ikeIspiLo, rh = info.ikeRspiHi, rl = info.ikeRspiLo;
      if ((ih | il) === 0) { s.drop(d, C.BAD_SPI); return; }
      let id = s.sas.find(SaKind.IKE, pub, server, ih, il);
      if (id >= 0) {
        if (s.sas.host[id] !== info.src) { s.drop(d, C.COLLISION); return; }
        if ((s.sas.rh[id] | s.sas.rl[id]) === 0 && (rh | rl) !== 0) {
          s.sas.rh[id] = rh; s.sas.rl[id] = rl;
          s.journalPut(id);
        }
      } else {
        // A new IKE SA seen in cleartext from its host: IKE_SA_INIT / Main / Aggressive request, or
        // the first message on an IKE SA rekeyed inside encrypted payload.
        id = s.addSa(SaKind.IKE, pub, server, h, ih, il, 0, now, true, this.wall());
        if (id < 0) { s.drop(d, refused(id)); return; }
        if ((rh | rl) !== 0) {
          s.sas.rh[id] = rh; s.sas.rl[id] = rl; s.journalPut(id);
          // Both SPIs set: the host speaks first on an IKE SA rekeyed inside encrypted payload (RFC
          // 7296 §1.3.2). That settles the SA its rekey exchange made it owed, exactly.
          s.learning.outboundIke(id, now);
        }
      }
      if (NatStage.saCreating(info.ikeVersion, info.ikeExchange)
        && !s.learning.exchange(id, true, info.ikeVersion, info.ikeExchange, info.ikeFlags, info.ikeMsgId, d, now)) return;
      s.sas.pkts[id]++; s.sas.bytes[id] += info.totalLength; s.sas.last[id] = now;
    } else if (kind === Kind.NAT_KEEPALIVE) {
      s.count(C.KEEPALIVE_OUT);
    } else {
      const spi = info.espSpi;
      if (spi === 0) { s.drop(d, C.BAD_SPI); return; }
      let id = s.sas.find(SaKind.ESP_OUT, pub, server, spi, 0);
      if (id >= 0 && s.sas.host[id] !== info.src) { s.removeSa(id, 'replaced'); id = -1; } // the server reused its SPI
      let isNew = false;
      if (id < 0) { id = s.addSa(SaKind.ESP_OUT, pub, server, h, spi, 0, 0, now, false, this.wall()); isNew = true; }
      // Outbound does not depend on the record: at a cap the packet still goes out (cap counted),
      // unless its host is owed an SA (learning could not see it: it might draw an unknown SPI).
      if (id < 0) {
        if (s.learning.owed(server, info.src, pub) > 0) { s.drop(d, refused(id)); return; }
        s.counters[refused(id)]++;
      } else {
        const sas = s.sas;
        const x = sas.pair[id];
        if (x >= 0) sas.last[x] = now; // the inbound direction of this SA lives while this one talks
        // While its host is owed an SA, a packet on an SA whose partner is not confirmed could draw the
        // server onto an SPI nobody knows yet: learning decides whether it waits.
        if ((isNew || ((sas.flags[id] & F_CONFIRMED) === 0 && s.learning.linkDebt[sas.link[id]] > 0))
          && !s.learning.outboundEsp(id, isNew, d, now)) return;
        sas.pkts[id]++; sas.bytes[id] += info.totalLength; sas.last[id] = now;
      }
    }
    // Classified offsets are absolute positions in pkt.bytes (the batch slab), not packet-relative.
    rewriteSrc4(info, pkt.bytes, s.publics[pub]);
    s.counters[C.OUT]++;
    d.rewritten = true;
    d.accept();
  }

  private staticForward(server: number): number {
    for (let i = 0; i < this.fwdNet.length; i++) if (((server & this.fwdMask[i]) >>> 0) === this.fwdNet[i]) return this.fwdHost[i];
    return 0;
  }

  private unknown(d: Decision, c: C): void {
    if (this.cfg.unknown_inbound === 'local') { this.state.counters[C.LOCAL]++; return; }
    this.state.drop(d, c);
  }

  private inbound(pkt: PacketContext, d: Decision, pub: number): void {
    const info = pkt.info;
    const s = this.state;
    const kind = info.kind;
    if (kind === Kind.NAT_KEEPALIVE) { s.drop(d, C.KEEPALIVE_IN); return; }
    const server = info.src;
    if (!this.serverAllowed(server)) { this.unknown(d, kind === Kind.IKE ? C.UNKNOWN_IKE : C.UNKNOWN); return; }
    const now = this.services.now();
    let id: number;
    if (kind === Kind.IKE) {
      const ih = info.ikeIspiHi, il = info.ikeIspiLo, rh = info.ikeRspiHi, rl = info.ikeRspiLo;
      id = s.sas.find(SaKind.IKE, pub, server, ih, il);
      if (id >= 0) {
        const kh = s.sas.rh[id], kl = s.sas.rl[id];
        if ((kh | kl) === 0) {
          if ((rh | rl) !== 0) { s.sas.rh[id] = rh; s.sas.rl[id] = rl; s.journalPut(id); }
        } else if ((rh | rl) !== 0 && (kh !== rh || kl !== rl)) {
          s.drop(d, C.RSPI_MISMATCH); return;
        }
      } else if ((rh | rl) === 0) {
        // Only a new IKE SA's first request has no responder SPI: the server initiates to the public
        // address. Forward it only by configuration.
        const ex = info.ikeExchange;
        const initReq = info.ikeVersion === 2
          ? ex === IKEV2_IKE_SA_INIT && (info.ikeFlags & IKEV2_F_RESPONSE) === 0
          : ex === IKEV1_MAIN || ex === IKEV1_AGGRESSIVE;
        const fwd = initReq ? this.staticForward(server) : 0;
        if (fwd === 0 || (ih | il) === 0) { this.unknown(d, C.UNKNOWN_IKE); return; }
        const h = s.host(fwd, now);
        if (h < 0) { s.drop(d, C.HOST_CAP); return; }
        if (s.hosts.pub[h] !== pub) { this.unknown(d, C.UNKNOWN_IKE); return; }
        id = s.addSa(SaKind.IKE, pub, server, h, ih, il, 0, now, true, this.wall());
        if (id < 0) { s.drop(d, refused(id)); return; }
        s.count(C.STATIC_FORWARD);
      } else {
        // Both SPIs set but unknown: an IKE SA rekeyed inside encrypted payload.
        id = s.learning.inbound(SaKind.IKE, pub, server, ih, il, rh, rl, d, now);
        if (id < 0) { this.refuseInbound(d, id, C.UNKNOWN_IKE); return; }
      }
      if (NatStage.saCreating(info.ikeVersion, info.ikeExchange)
        && !s.learning.exchange(id, false, info.ikeVersion, info.ikeExchange, info.ikeFlags, info.ikeMsgId, d, now)) return;
    } else {
      const spi = info.espSpi;
      id = s.sas.find(SaKind.ESP_IN, pub, server, spi, 0);
      if (id < 0) {
        if (spi === 0) { s.drop(d, C.BAD_SPI); return; }
        id = s.learning.inbound(SaKind.ESP_IN, pub, server, spi, 0, 0, 0, d, now);
        if (id < 0) { this.refuseInbound(d, id, C.UNKNOWN); return; }
      }
      const y = s.sas.pair[id];
      if (y >= 0) s.sas.last[y] = now; // and the outbound direction lives while this one talks
      if (s.learning.turns !== 0) s.learning.knownInbound(id, now);
    }
    s.sas.pkts[id]++; s.sas.bytes[id] += info.totalLength; s.sas.last[id] = now;
    rewriteDst4(info, pkt.bytes, s.sas.host[id]);
    s.counters[C.IN]++;
    d.rewritten = true;
    d.accept();
  }

  /** An unknown inbound SPI that learning did not place: held (decided already), unknown, or refused. */
  private refuseInbound(d: Decision, id: number, unknownCounter: C): void {
    if (id === HELD) return;
    if (id === refusal(C.UNKNOWN) || id === refusal(C.UNKNOWN_IKE)) this.unknown(d, unknownCounter);
    else this.state.drop(d, refused(id));
  }

  onHoldExpired(handle: number): void {
    this.state.learning.onHoldExpired(handle);
  }

  /**
   * A batch's journal lines (its new, replaced and deleted SAs) go out in one write at its end,
   * still before its verdicts are sent (engine: batchEnd runs inside handleBatch): `kill -9` after
   * a verdict loses nothing, and a burst of new SAs costs one write(2) per batch, not one per SA.
   */
  batchStart(): void { this.state.journal?.beginBatch(); }
  batchEnd(): void { this.state.journal?.endBatch(); }

  /** Learning turns end within tens of milliseconds; the idle sweep still runs once a second. */
  readonly tickMs = 20;

  tick(now: number): void {
    if (this.passive) { this.persist?.tick(); return; }
    this.state.learning.tick(now);
    // A compaction that starts runs its first slice in this turn; the sweep's slice waits for the
    // next tick (20 ms), so the two never add up in one turn (bench/stall.bench.ts, idle expiry).
    if (this.persist?.tick()) return;
    this.idleSweep.run(now, this.persist?.compacting ?? false);
  }

  stats(): Record<string, unknown> {
    const s = this.state;
    return {
      sas: s.sas.count, hosts: s.hosts.count, turns: s.learning.turns, held: s.learning.heldCount,
      table_bytes: s.sas.byteLength,
      journal: this.persist?.stats() ?? null,
      counters: Object.fromEntries(Array.from(s.counters, (v, i) => [i, v]).map(([i, v]) => [counterName(i), v])),
    };
  }

  gauges(): { name: string; help: string; value: number }[] {
    const j = this.persist?.journal;
    if (!j) return [];
    return [
      { name: 'nat_journal_degraded', help: 'alarm: 1 while the NAT journal cannot write (full or read-only disk); changes are not saved', value: j.degraded ? 1 : 0 },
      { name: 'nat_journal_lost_changes', help: 'NAT journal changes not written while degraded (restored by the next successful rewrite)', value: j.lost },
    ];
  }

  command(name: string, args: Record<string, unknown>): unknown {
    return natCommand(this, name, args);
  }

  close(): Promise<void> | void {
    this.state.learning.dropAllHeld();
    return this.persist?.close();
  }
}

import { COUNTER_DEFS } from './counters';
function counterName(i: number): string { return COUNTER_DEFS[i][0]; }
