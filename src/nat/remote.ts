/**
 * The NAT stage of a worker thread (workers: N > 1). The owner thread (runtime's main thread) runs
 * the real NatStage over the shared SA table; this stage reads that table (shared.ts) and decides
 * on its own only the packets that change nothing but activity counters:
 *   outbound ESP on a known SA of its host whose partner is confirmed or whose host is owed nothing;
 *   outbound IKE on a known IKE SA (responder SPI known or not in the packet), not SA-creating;
 *   inbound ESP on a known SA while no learning turn runs;
 *   inbound IKE on a known IKE SA whose responder SPI agrees, not SA-creating.
 * Everything else (new SAs, learning, keepalives, fragments, refusals, anything read while the owner
 * rewrote the record) is held here and handed to the owner through `forward`; the owner's answer
 * (verdict, rewritten bytes; the queue's default verdict when NAT did not decide) comes back through reply() and the engine re-runs the held packet here,
 * where it is applied. Fails closed like NatStage: a throw, an expired hold or a lost owner drops.
 * Activity is written from here without a lock: `last` at most every LAST_EVERY_MS per record, packet
 * and byte counts through a private ActivityCache every FLUSH_MS (docs/nat.md "Memory model").
 */
import { Kind } from '../packet/classify';
import { ip4 as ipv4ToNumber } from '../packet/bytes';
import { rewriteDst4, rewriteSrc4 } from '../packet/rewrite';
import { HOOK_POSTROUTING, HOOK_PREROUTING, Verdict, type Decision, type PacketContext, type Stage, type StageServices } from '../engine/stage';
import type { NatConfig } from './config';
import { SharedSaView, type SharedNatMemory } from './shared';
import { SaKind, F_CONFIRMED } from './table';
import { parsePrefix } from './stage';
import { ActivityCache, FLUSH_MS } from './activity';
import type { ForwardedPacket, OwnerReply } from '../engine/forward';

export type { ForwardedPacket, OwnerReply };

const IKEV2_IKE_AUTH = 35;
const IKEV2_CREATE_CHILD_SA = 36;
const IKEV1_QUICK = 32;

/**
 * A record's last-activity time, written at most every LAST_EVERY_MS: idle timeouts count in seconds,
 * and a cache line another thread keeps reading stays shared instead of bouncing on every packet.
 */
const LAST_EVERY_MS = 250;
function touch(last: Float64Array, id: number, now: number): void {
  if (now - last[id]! >= LAST_EVERY_MS) last[id] = now;
}

export class NatWorkerStage implements Stage {
  readonly name = 'nat';
  readonly failure = 'closed';
  private readonly view: SharedSaView;
  // The shared arrays as fields of this class (not read through the object postMessage delivered: see SharedSaView).
  private readonly turns: Int32Array;
  private readonly linkOwed: Int32Array;
  private readonly last: Float64Array;
  /** Packet and byte counts, spilled into the shared table every FLUSH_MS (tick) and at close. */
  readonly activity: ActivityCache;
  /**
   * turns[0] and turns[1] as read at the start of the running batch (batchStart), or -1 outside a
   * batch (then process() reads them itself). Every packet of a batch reached this thread before
   * the batch began, so reading once per batch decides each packet on a value read after it
   * arrived, as reading per packet did: a turn or a standby published before a packet arrived is
   * seen by it either way (and one published later is not, either way).
   */
  private batchTurns = -1;
  private batchStandby = -1;
  private readonly publics: Uint32Array;
  private readonly anyServer: boolean;
  private readonly serverNet: Uint32Array;
  private readonly serverMask: Uint32Array;
  private services!: StageServices;
  private readonly replies = new Map<number, OwnerReply>();
  /** Held handle → seq of the forward it waits for (a late answer for an expired hold is ignored). */
  private readonly pending = new Map<number, number>();
  private nextSeq = 1;
  private ownerDropId = 0;
  private holdCapId = 0;
  private readonly holdMs: number;
  /** Fast-path and forwarding counts (stats(); the owner's NatStage counts what it decides). */
  private readonly c = { in: 0, out: 0, forwarded: 0, answered: 0, lost: 0, late: 0 };

  constructor(readonly cfg: NatConfig, mem: SharedNatMemory, private readonly forward: (p: ForwardedPacket) => void) {
    this.view = new SharedSaView(mem.sas);
    this.turns = mem.turns;
    this.linkOwed = mem.linkOwed;
    this.last = mem.sas.last;
    this.activity = new ActivityCache(mem.sas.pkts, mem.sas.bytes, mem.sas.seq);
    this.publics = Uint32Array.from(cfg.public.map(ipv4ToNumber));
    this.anyServer = cfg.servers === 'any';
    const servers = cfg.servers === 'any' ? [] : cfg.servers.map(parsePrefix);
    this.serverNet = Uint32Array.from(servers.map((s) => s[0]));
    this.serverMask = Uint32Array.from(servers.map((s) => s[1]));
    // Longer than any hold of the owner (learning's hold_ms plus the engine's slack): the owner answers first.
    this.holdMs = cfg.timeouts.hold_ms + 2000;
  }

  init(services: StageServices): void {
    this.services = services;
    this.ownerDropId = services.reason('nat.owner_dropped', 'NAT packets this worker handed to the NAT owner thread and the owner dropped (the reason is counted there, under nat.*)');
    this.holdCapId = services.reason('nat.forward_hold_cap', 'NAT packets a worker could not hold while the owner decides (held.max reached): dropped');
  }

  /** The owner decided a forwarded packet: re-run it here (the engine calls process() with its handle). */
  reply(r: OwnerReply): void {
    if (this.pending.get(r.handle) !== r.seq) { this.c.late++; return; }
    this.pending.delete(r.handle);
    this.replies.set(r.handle, r);
    this.services.release(r.handle);
  }

  private serverAllowed(addr: number): boolean {
    if (this.anyServer) return true;
    for (let i = 0; i < this.serverNet.length; i++) if (((addr & this.serverMask[i]) >>> 0) === this.serverNet[i]) return true;
    return false;
  }

  private pubIndexOf(addr: number): number {
    const p = this.publics;
    for (let i = 0; i < p.length; i++) if (p[i] === addr) return i;
    return -1;
  }

  batchStart(): void {
    this.batchTurns = Atomics.load(this.turns, 0);
    this.batchStandby = Atomics.load(this.turns, 1);
    this.view.batchStart();
  }

  batchEnd(): void {
    this.batchTurns = -1;
    this.batchStandby = -1;
    this.view.batchEnd();
  }

  readonly tickMs = FLUSH_MS;
  tick(): void { this.activity.flush(); }
  close(): void { this.activity.flush(); }

  private standby(): boolean {
    return (this.batchStandby < 0 ? Atomics.load(this.turns, 1) : this.batchStandby) !== 0;
  }

  private turnRuns(): boolean {
    return (this.batchTurns < 0 ? Atomics.load(this.turns, 0) : this.batchTurns) !== 0;
  }

  process(pkt: PacketContext, d: Decision): void {
    // An owner's answer is re-run with its held handle (no answer waiting: no held packet of ours).
    if (this.replies.size !== 0) {
      const held = this.services.heldHandle?.() ?? -1;
      const r = held >= 0 ? this.replies.get(held) : undefined;
      if (r) { this.replies.delete(held); this.apply(pkt, d, r); return; }
    }
    const info = pkt.info;
    if (info.reason !== 0 || info.ipVersion !== 4) return;
    const kind = info.kind;
    if (kind !== Kind.ESP && kind !== Kind.ESP_IN_UDP && kind !== Kind.IKE && kind !== Kind.NAT_KEEPALIVE) return;
    // HA standby (the owner's NatStage is passive): nothing is decided here; the owner drops and counts.
    if (this.standby()) { this.toOwner(pkt, d); return; }
    let done = false;
    if (pkt.hook === HOOK_PREROUTING) {
      const pub = this.pubIndexOf(info.dst);
      if (pub < 0) return;
      done = !info.isFragment && this.inbound(pkt, d, pub);
    } else if (pkt.hook === HOOK_POSTROUTING) {
      if (this.pubIndexOf(info.src) >= 0 || !this.serverAllowed(info.dst)) return;
      done = !info.isFragment && this.outbound(pkt, d);
    } else {
      return;
    }
    if (!done) this.toOwner(pkt, d);
  }

  private static saCreating(version: number, exchange: number): boolean {
    return version === 2 ? (exchange === IKEV2_IKE_AUTH || exchange === IKEV2_CREATE_CHILD_SA) : exchange === IKEV1_QUICK;
  }

  /** True when decided here (accepted, rewritten). */
  private outbound(pkt: PacketContext, d: Decision): boolean {
    const info = pkt.info;
    const v = this.view;
    const server = info.dst;
    let id = -1;
    // The public index of the record found: part of its key (read from the record, it could be a later one's).
    let p = 0;
    if (info.kind === Kind.IKE) {
      if ((info.ikeIspiHi | info.ikeIspiLo) === 0 || NatWorkerStage.saCreating(info.ikeVersion, info.ikeExchange)) return false;
      for (; p < this.publics.length; p++) if ((id = v.lookup(SaKind.IKE, p, server, info.ikeIspiHi, info.ikeIspiLo)) >= 0) break;
      if (id < 0 || v.host !== info.src) return false;
      if ((v.rh | v.rl) === 0 && (info.ikeRspiHi | info.ikeRspiLo) !== 0) return false; // the owner records the responder SPI
    } else if (info.kind !== Kind.NAT_KEEPALIVE) {
      const spi = info.espSpi;
      if (spi === 0) return false;
      for (; p < this.publics.length; p++) if ((id = v.lookup(SaKind.ESP_OUT, p, server, spi, 0)) >= 0 && v.host === info.src) break;
      if (p === this.publics.length) return false; // none, or not this host's
      if ((v.flags & F_CONFIRMED) === 0) {
        const owed = this.linkOwed;
        // A link the shared array cannot name reads as owed: the owner decides.
        if (v.link < 0 || v.link >= owed.length || Atomics.load(owed, v.link) > 0) return false;
      }
      if (v.pair >= 0) touch(this.last, v.pair, this.services.now());
    } else {
      return false;
    }
    const now = this.services.now();
    this.activity.add(id, info.totalLength); touch(this.last, id, now);
    rewriteSrc4(info, pkt.bytes, this.publics[p]);
    this.c.out++;
    d.rewritten = true;
    d.accept();
    return true;
  }

  private inbound(pkt: PacketContext, d: Decision, pub: number): boolean {
    const info = pkt.info;
    const v = this.view;
    const server = info.src;
    if (!this.serverAllowed(server)) return false;
    let id: number;
    if (info.kind === Kind.IKE) {
      if (NatWorkerStage.saCreating(info.ikeVersion, info.ikeExchange)) return false;
      id = v.lookup(SaKind.IKE, pub, server, info.ikeIspiHi, info.ikeIspiLo);
      if (id < 0) return false;
      const rh = info.ikeRspiHi, rl = info.ikeRspiLo;
      if ((rh | rl) !== 0 && (v.rh !== rh || v.rl !== rl)) return false; // to be recorded, or a mismatch: the owner's call
    } else if (info.kind !== Kind.NAT_KEEPALIVE) {
      if (info.espSpi === 0 || this.turnRuns()) return false;
      id = v.lookup(SaKind.ESP_IN, pub, server, info.espSpi, 0);
      if (id < 0) return false;
      if (v.pair >= 0) touch(this.last, v.pair, this.services.now());
    } else {
      return false;
    }
    const now = this.services.now();
    this.activity.add(id, info.totalLength); touch(this.last, id, now);
    rewriteDst4(info, pkt.bytes, v.host);
    this.c.in++;
    d.rewritten = true;
    d.accept();
    return true;
  }

  private toOwner(pkt: PacketContext, d: Decision): void {
    const h = this.services.hold(this.holdMs);
    if (h < 0) { d.drop(this.holdCapId); return; }
    this.c.forwarded++;
    const seq = this.nextSeq++;
    this.pending.set(h, seq);
    this.forward({ handle: h, seq, bytes: pkt.bytes.slice(pkt.offset, pkt.offset + pkt.length), mark: pkt.mark, indev: pkt.indev,
      outdev: pkt.outdev, hook: pkt.hook, queue: pkt.queue, wire: Math.max(pkt.length, pkt.info.totalLength) });
    d.verdict = Verdict.HOLD;
  }

  private apply(pkt: PacketContext, d: Decision, r: OwnerReply): void {
    this.c.answered++;
    if (r.verdict === 'drop') { d.drop(this.ownerDropId); return; }
    if (r.mark >= 0) d.setMark(r.mark >>> 0);
    if (r.payload) {
      if (r.payload.length > pkt.capacity) { d.drop(this.ownerDropId); return; }
      pkt.bytes.set(r.payload, pkt.offset);
      pkt.length = r.payload.length;
      d.rewritten = true;
    }
    d.accept();
  }

  onHoldExpired(handle: number): void {
    // The owner did not answer in time (the engine dropped the packet: this stage fails closed).
    if (this.pending.delete(handle)) this.c.lost++;
    this.replies.delete(handle);
  }

  stats(): Record<string, unknown> {
    return { worker: { ...this.c, raced: this.view.raced, slow: this.view.slow, waiting: this.pending.size } };
  }
}
