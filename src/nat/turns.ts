/**
 * Learning turns per (public, server): windows around SA-creating exchanges, probes around an owed
 * host's packets, clearing before either, and the packets that wait meanwhile (docs/nat.md,
 * "Learning turns"). Placement of unknown SPIs builds on this in learning.ts.
 */
import { SaKind } from './table';
import { C } from './counters';
import type { Decision } from '../engine/stage';
import type { NatState } from './state';
import { Books, IKEV2_IKE_AUTH } from './books';
import { HoldKind, NatHolds } from './held';

/**
 * A peer's learning turn. CLEARING precedes a window or probe while another owed host's packet or
 * exchange passed less than probe_ms ago (its answer could still come and be taken for this turn's):
 * everyone owed waits until that time is over.
 */
export const enum Turn { NONE = 0, WINDOW = 1, PROBE = 2, CLEARING = 3 }

/** An inbound SPI that several hosts may own; its packets wait here. */
export interface Pending {
  kind: SaKind; a: number; b: number; rh: number; rl: number;
  first: number; last: number; packets: number;
}

const IKEV2_F_RESPONSE = 0x20;
const MAX_PROBE_BACKOFF = 6;

export abstract class Turns extends Books {
  turn: Turn[] = [];
  turnLink: number[] = [];
  turnStart: number[] = [];
  turnDeadline: number[] = [];
  /** Window: the opener's direction (true: the host sent the request), whether the response passed. */
  turnFromHost: boolean[] = [];
  turnSettled: boolean[] = [];
  /**
   * Probe: the outbound ESP record whose packet started it, while an answer can only be to that SA
   * (its host sent nothing else unconfirmed for probe_ms before and during the probe); else -1.
   */
  turnOut: number[] = [];
  pending: (Map<string, Pending> | null)[] = [];
  /** Records placed while the peer's current turn runs (their held packets are no answer to it). */
  protected placedInTurn: number[][] = [];
  /** Peers with a turn, held packets or pending SPIs (what tick() visits). */
  protected readonly busy = new Set<number>();
  turns = 0;
  /** Turns running per LAN host (one host talking to many servers cannot take every turn). */
  private readonly turnsOfHost = new Map<number, number>();
  readonly held: NatHolds;

  constructor(s: NatState) {
    super(s);
    this.held = new NatHolds(s);
  }

  get heldCount(): number { return this.held.count; }

  protected peerAdded(): void {
    this.turn.push(Turn.NONE); this.turnLink.push(-1); this.turnStart.push(0); this.turnDeadline.push(0);
    this.turnFromHost.push(false); this.turnSettled.push(false); this.turnOut.push(-1);
    this.pending.push(null);
    this.placedInTurn.push([]);
  }

  protected linkBusy(l: number): boolean {
    const p = this.linkPeer[l];
    return this.turnLink[p] === l && this.turn[p] !== Turn.NONE;
  }

  protected get t() { return this.s.cfg.timeouts; }

  // ---------------------------------------------------------------- turns

  /** The peer's running turn, ending it first when its deadline has passed. */
  turnOf(p: number, now: number): Turn {
    const t = this.turn[p];
    if (t !== Turn.NONE && now >= this.turnDeadline[p]) {
      this.endTurn(p, false, now);
      return Turn.NONE;
    }
    return t;
  }

  private startTurn(p: number, kind: Turn, l: number, now: number, deadline: number): void {
    this.turn[p] = kind;
    this.turnLink[p] = l;
    this.turnStart[p] = now;
    this.turnDeadline[p] = deadline;
    this.turnSettled[p] = false;
    this.turnOut[p] = -1;
    this.placedInTurn[p].length = 0;
    this.turns++;
    if (this.s.sharedLearning) Atomics.store(this.s.sharedLearning.turns, 0, this.turns);
    const h = this.linkHost[l];
    this.turnsOfHost.set(h, (this.turnsOfHost.get(h) ?? 0) + 1);
    this.busy.add(p);
  }

  /** No more turns at once: in all (max_windows), or for one LAN host (max_windows_per_host). */
  private turnCap(l: number): boolean {
    const lim = this.s.cfg.limits;
    return this.turns >= lim.max_windows || (this.turnsOfHost.get(this.linkHost[l]) ?? 0) >= lim.max_windows_per_host;
  }

  protected endTurn(p: number, learned: boolean, now: number): void {
    const kind = this.turn[p];
    if (kind === Turn.NONE) return;
    const l = this.turnLink[p];
    this.turn[p] = Turn.NONE;
    this.turnLink[p] = -1;
    this.turns--;
    if (this.s.sharedLearning) Atomics.store(this.s.sharedLearning.turns, 0, this.turns);
    const h = this.linkHost[l];
    const n = (this.turnsOfHost.get(h) ?? 1) - 1;
    if (n <= 0) this.turnsOfHost.delete(h); else this.turnsOfHost.set(h, n);
    if (kind === Turn.PROBE) {
      if (learned) this.linkProbeFails[l] = 0;
      else {
        this.s.count(C.PROBE_EXPIRED);
        // A host whose server does not answer (one-way traffic) goes to the back of the line.
        this.linkProbeFails[l] = Math.min(MAX_PROBE_BACKOFF, this.linkProbeFails[l] + 1);
        this.linkProbeAfter[l] = now + this.t.probe_ms * (1 << this.linkProbeFails[l]);
      }
    } else if (kind === Turn.WINDOW && !learned && this.linkDebt[l] > 0) {
      this.s.count(C.WINDOW_EXPIRED);
    }
    this.releaseWaiting(p);
    if (this.linkPeer[l] >= 0) this.freeLinkIfEmpty(l);
  }

  /** Lets every packet held behind a turn run again (in arrival order: the first takes the next turn). */
  private releaseWaiting(p: number): void {
    this.held.release(p, (e) => e.kind !== HoldKind.PENDING);
  }

  protected hold(p: number, host: number, kind: HoldKind, key: string, d: Decision, now: number): boolean {
    if (!this.held.hold(p, host, kind, key, d, now)) return false;
    this.busy.add(p);
    return true;
  }

  onHoldExpired(handle: number): void {
    this.held.onExpired(handle);
  }

  // ---------------------------------------------------------------- SA-creating IKE exchanges

  /**
   * An SA-creating IKE message (IKEv2 IKE_AUTH / CREATE_CHILD_SA, IKEv1 Quick Mode) between the host of
   * IKE record `ike` and its server, either direction. Counts the exchange once and runs the window
   * rules; false when the message was held or dropped (the decision says which).
   */
  exchange(ike: number, fromHost: boolean, version: number, exch: number, flags: number, msgid: number,
    d: Decision, now: number): boolean {
    const sas = this.s.sas;
    const l = this.linkOf(sas.server[ike], sas.host[ike], sas.pub[ike]);
    const p = this.linkPeer[l];
    const t = this.turnOf(p, now);
    const key = `${ike}:${msgid}:${fromHost ? 1 : 0}`;
    if (t !== Turn.NONE && (this.turnLink[p] !== l || t === Turn.CLEARING)) {
      this.hold(p, sas.host[ike], HoldKind.EXCHANGE, key, d, now);
      return false;
    }
    if (t === Turn.PROBE) this.turnOut[p] = -1; // its own exchange may bring what answers now
    const isResponse = version === 2 ? (flags & IKEV2_F_RESPONSE) !== 0 : false;
    const fresh = this.isNewExchange(ike, fromHost, version, exch, isResponse, msgid);
    if (t === Turn.NONE && fresh) {
      // A window helps while this host is the only one owed (whatever new SPI the server uses next is
      // its own, and holding the others keeps it so), and for a rekey even when idle hosts are owed
      // too: a server that rekeys a busy tunnel switches to the new SA at once, and the first new SPI
      // right after the exchange is its reply. A new connection (IKE_AUTH) of an idle host buys
      // nothing by waiting: its first packet will probe.
      // IKEv1 has no IKE_AUTH: an ISAKMP SA's first Quick Mode is the new connection's.
      const rekey = version === 2 ? exch !== IKEV2_IKE_AUTH : sas.m1[ike] !== 0;
      const othersOwed = this.peerDebtors[p] - (this.linkDebt[l] > 0 ? 1 : 0) > 0;
      // Windows one after another for idle hosts cost each waiting client a window apiece: once one
      // has waited half of window_max_ms, rekeys go on without windows (clients retransmit at 0.5 s+).
      if (othersOwed && (!rekey || this.held.longestWait(p, now) >= this.t.window_max_ms / 2)) this.s.count(C.WINDOW_SKIPPED);
      else if (this.turnCap(l)) this.s.count(C.WINDOW_CAP);
      else if (!this.beginTurn(p, Turn.WINDOW, l, now)) {
        this.hold(p, sas.host[ike], HoldKind.EXCHANGE, key, d, now);
        return false;
      } else {
        this.turnFromHost[p] = fromHost;
        this.s.count(C.WINDOW_OPENED);
      }
    }
    if (t === Turn.WINDOW) {
      // The other side's message of the exchange ends the wait for it; the window then lasts only
      // as long as the server's first packet on the new SA may take.
      const answer = version === 2 ? isResponse : fromHost !== this.turnFromHost[p];
      if (answer && !this.turnSettled[p]) {
        this.turnSettled[p] = true;
        this.turnDeadline[p] = Math.min(this.turnDeadline[p], now + this.t.window_settle_ms);
      }
    }
    this.held.passed(p, key);
    if (fresh) {
      this.markExchange(ike, fromHost, version, exch, msgid);
      this.setDebt(l, this.linkDebt[l] + 1);
      this.s.count(C.DEBT_COUNTED);
    }
    // The server may start using what this exchange creates right after it (a busy tunnel's rekey):
    // another host's turn waits window_settle_ms, as this host's own window would have.
    this.linkLastPass[l] = Math.max(this.linkLastPass[l], now - this.t.probe_ms + this.t.window_settle_ms);
    return true;
  }

  /**
   * Starts a window or probe for link l, or CLEARING first while another owed host passed something
   * less than probe_ms ago (false then: the caller holds its packet until the clearing ends).
   */
  private beginTurn(p: number, kind: Turn, l: number, now: number): boolean {
    let clearAt = 0;
    for (const o of this.peerLinks[p]) {
      if (o !== l && this.linkDebt[o] > 0) clearAt = Math.max(clearAt, this.linkLastPass[o] + this.t.probe_ms);
    }
    if (clearAt > now) {
      this.startTurn(p, Turn.CLEARING, l, now, clearAt);
      return false;
    }
    this.startTurn(p, kind, l, now, now + (kind === Turn.WINDOW ? this.t.window_max_ms : this.t.probe_ms));
    return true;
  }

  // ---------------------------------------------------------------- outbound ESP: probes

  /**
   * An outbound ESP packet on record `id` (created just now when `isNew`) of a host that is owed an SA
   * while others are too: its reply could come on the SPI nobody knows yet, so it starts a probe, or
   * waits while another host's turn runs (that turn is placing the next new SPI). False when held or
   * dropped.
   */
  outboundEsp(id: number, isNew: boolean, d: Decision, now: number): boolean {
    const sas = this.s.sas;
    const l = sas.link[id];
    if (l < 0) return true;
    if (isNew) {
      this.pairIfOne(l); // for liveness only: a guess at pairs never decides who owns an SPI
      if (this.linkDebt[l] === 0 && sas.pair[id] < 0 && this.unpaired(this.linkIn[l]) === 0) {
        // A new SA the server chose for this host: the host chose one for the server too.
        this.setDebt(l, 1);
        this.s.count(C.DEBT_OUTBOUND);
        this.recheck(this.linkPeer[l], now);
      }
    }
    if (this.linkDebt[l] === 0) return true;
    const p = this.linkPeer[l];
    const t = this.turnOf(p, now);
    if (t !== Turn.NONE) {
      if (this.turnLink[p] === l && t !== Turn.CLEARING) {
        // The probing host talks on another SA too: its reply still names the host, but no longer
        // which of its SAs it belongs to.
        if (t === Turn.PROBE && this.turnOut[p] !== id) this.turnOut[p] = -1;
        this.linkLastPass[l] = now;
        return true;
      }
      if (this.hold(p, sas.host[id], HoldKind.FIRST_ESP, '', d, now)) this.s.count(C.PROBE_HELD);
      return false;
    }
    // Alone in being owed (elimination will place its SPI), or backed off after probes that saw no
    // reply: it passes, and its answer may come within probe_ms, which the next turn waits out.
    if (this.peerDebtors[p] === 1 || now < this.linkProbeAfter[l] || this.turnCap(l)) {
      if (this.peerDebtors[p] !== 1 && now >= this.linkProbeAfter[l]) this.s.count(C.WINDOW_CAP);
      this.linkLastPass[l] = now;
      return true;
    }
    if (!this.beginTurn(p, Turn.PROBE, l, now)) {
      if (this.hold(p, sas.host[id], HoldKind.FIRST_ESP, '', d, now)) this.s.count(C.PROBE_HELD);
      return false;
    }
    this.turnOut[p] = this.linkLastPass[l] <= now - this.t.probe_ms ? id : -1;
    this.s.count(C.PROBE_STARTED);
    this.linkLastPass[l] = now;
    return true;
  }
}
