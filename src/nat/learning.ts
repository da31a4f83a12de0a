/**
 * Who owns an inbound SPI nobody has seen in cleartext. Per (public, server) "peer"; docs/nat.md has
 * the state machine, every counter and the argument for why it never routes to a wrong host.
 *
 * The books: every SA-creating exchange a host has with a server (IKEv2 IKE_AUTH once per IKE SA,
 * each CREATE_CHILD_SA, each IKEv1 Quick Mode; retransmissions counted once by message ID) makes the
 * host *owed* one inbound SA. Owed counts only over-count (a failed exchange stays owed until the
 * host's last IKE SA to that server idles out), so "only one host is owed anything" is a fact, never
 * a guess. An unknown inbound SPI from the server then gets exactly one owner:
 * 1. REPLY: a host sent its first packet on an outbound SA with no known partner (a probe), and this
 *    is the first new SPI the server used since (or an ambiguous one that was quiet before the probe);
 *    likewise the first new SPI after a window's exchange completed (WINDOW).
 * 2. ELIMINATION: exactly one host is owed, and no more unknown SPIs are waiting than it is owed.
 * 3. Otherwise it is ambiguous: its packets are held (bounded) until 1 or 2 resolves it, then dropped.
 * Learning turns keep 1 and 2 available: while a host's probe runs, other hosts' first packets and
 * SA-creating exchanges are held (one round trip); while a host's exchange runs (a window), other
 * hosts' SA-creating messages are held. A window opens when its host is the only one owed, or for a
 * rekey; it lasts only until the response plus window_settle_ms.
 */
import { SaKind, Via, F_LEARNED, F_CONFIRMED } from './table';
import { C, refusal } from './counters';
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

/** Returned by Learning.inbound() when the packet was held as ambiguous (the decision says HOLD). */
export const HELD = refusal(C.HELD);

/** An inbound SPI that several hosts may own; its packets wait here. */
export interface Pending {
  kind: SaKind; a: number; b: number; rh: number; rl: number;
  first: number; last: number; packets: number;
}

/** Inbound packets held per ambiguous SPI (the rest are dropped, counted). */
const HELD_PER_PENDING = 16;

const IKEV2_F_RESPONSE = 0x20;
const MAX_PROBE_BACKOFF = 6;

export class Learning extends Books {
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
  private placedInTurn: number[][] = [];
  /** Peers with a turn, held packets or pending SPIs (what tick() visits). */
  private readonly busy = new Set<number>();
  turns = 0;
  /** Turns running per LAN host (one host talking to many servers cannot take every turn). */
  private readonly turnsOfHost = new Map<number, number>();
  readonly held: NatHolds;
  private rechecking = false;

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

  private get t() { return this.s.cfg.timeouts; }

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
    const h = this.linkHost[l];
    this.turnsOfHost.set(h, (this.turnsOfHost.get(h) ?? 0) + 1);
    this.busy.add(p);
  }

  /** No more turns at once: in all (max_windows), or for one LAN host (max_windows_per_host). */
  private turnCap(l: number): boolean {
    const lim = this.s.cfg.limits;
    return this.turns >= lim.max_windows || (this.turnsOfHost.get(this.linkHost[l]) ?? 0) >= lim.max_windows_per_host;
  }

  private endTurn(p: number, learned: boolean, now: number): void {
    const kind = this.turn[p];
    if (kind === Turn.NONE) return;
    const l = this.turnLink[p];
    this.turn[p] = Turn.NONE;
    this.turnLink[p] = -1;
    this.turns--;
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

  private hold(p: number, host: number, kind: HoldKind, key: string, d: Decision, now: number): boolean {
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

  // ---------------------------------------------------------------- inbound: unknown SPIs

  /**
   * Who owns an unknown inbound SPI (ESP: a = SPI; IKE: a/b = initiator SPI, rh/rl = responder SPI):
   * a new record id, HELD (ambiguous, the decision says HOLD), or a refusal(counter).
   */
  inbound(kind: SaKind, pub: number, server: number, a: number, b: number, rh: number, rl: number,
    d: Decision, now: number): number {
    const p = this.peer(server, pub);
    if (p < 0) return refusal(C.UNKNOWN);
    // Nobody owed and nothing waiting: refuse before building anything (floods of random SPIs).
    if (this.peerDebtors[p] === 0 && this.pending[p] === null) return refusal(kind === SaKind.IKE ? C.UNKNOWN_IKE : C.UNKNOWN);
    const key = kind === SaKind.IKE ? `i${a}:${b}` : `e${a}`;
    const pend = this.pending[p]?.get(key);
    const prev = pend ? pend.last : 0;
    if (pend) { pend.last = now; pend.packets++; }
    const t = this.turnOf(p, now);
    let owner = -1;
    let via = Via.ELIMINATION;
    if (kind === SaKind.ESP_IN && t === Turn.PROBE && this.linkDebt[this.turnLink[p]] > 0) {
      // The reply to the probe: the first SPI the server starts using after it, or one that had
      // been quiet for a probe's length before it.
      if (!pend || prev <= this.turnStart[p] - this.t.probe_ms) { owner = this.turnLink[p]; via = Via.REPLY; }
    } else if (t === Turn.WINDOW && this.turnSettled[p] && !pend && this.linkDebt[this.turnLink[p]] > 0) {
      // The first new SPI after the window's exchange completed: the server started using the SA it
      // just made (nobody else could start an exchange or send a first packet meanwhile).
      owner = this.turnLink[p];
      via = Via.WINDOW;
    }
    if (owner < 0) {
      const l = this.soleDebtor(p);
      const waiting = (this.pending[p]?.size ?? 0) + (pend ? 0 : 1);
      if (l >= 0 && waiting <= this.linkDebt[l]) {
        owner = l;
        via = t === Turn.WINDOW && this.turnLink[p] === l ? Via.WINDOW : Via.ELIMINATION;
      }
    }
    if (owner < 0) {
      if (this.peerDebtors[p] === 0 && !pend) return refusal(kind === SaKind.IKE ? C.UNKNOWN_IKE : C.UNKNOWN);
      return this.holdPending(p, key, pend, kind, a, b, rh, rl, d, now);
    }
    return this.assign(owner, kind, a, b, rh, rl, via, now);
  }

  private holdPending(p: number, key: string, pend: Pending | undefined, kind: SaKind, a: number, b: number,
    rh: number, rl: number, d: Decision, now: number): number {
    if (!pend) {
      let m = this.pending[p];
      if (!m) { m = new Map(); this.pending[p] = m; }
      if (m.size >= this.s.cfg.limits.max_pending) { this.s.drop(d, C.PENDING_CAP); return HELD; }
      pend = { kind, a, b, rh, rl, first: now, last: now, packets: 1 };
      m.set(key, pend);
      this.busy.add(p);
    }
    if (this.held.countKey(p, key) >= HELD_PER_PENDING) { this.s.drop(d, C.AMBIGUOUS); return HELD; }
    if (this.hold(p, 0, HoldKind.PENDING, key, d, now)) this.s.count(C.PENDING_HELD);
    return HELD;
  }

  /** Creates the inbound record for link l's host, settles one owed SA, resolves what waited on it. */
  private assign(l: number, kind: SaKind, a: number, b: number, rh: number, rl: number, via: Via, now: number): number {
    const s = this.s;
    const p = this.linkPeer[l];
    const pub = this.linkPub[l];
    const existing = s.sas.find(kind, pub, this.peerServer[p], a, b);
    if (existing >= 0) return existing; // placed already (never two records for one key)
    const h = s.host(this.linkHost[l], now);
    if (h < 0) return refusal(C.HOST_CAP);
    if (s.hosts.pub[h] !== pub) return refusal(C.UNKNOWN); // binding changed since; never route across publics
    const id = s.addSa(kind, pub, this.peerServer[p], h, a, b, F_LEARNED, now, false);
    if (id < 0) return id;
    const sas = s.sas;
    sas.rh[id] = rh;
    sas.rl[id] = rl;
    sas.via[id] = via;
    s.journalPut(id);
    this.setDebt(l, this.linkDebt[l] - 1);
    if (this.turn[p] !== Turn.NONE) this.placedInTurn[p].push(id);
    s.count(via === Via.REPLY ? C.LEARNED_REPLY : via === Via.WINDOW ? C.WINDOW_LEARNED : C.LEARNED_ELIMINATION);
    if (kind === SaKind.ESP_IN) {
      const y = via === Via.REPLY ? this.turnOut[p] : -1;
      if (y >= 0 && sas.kind[y] === SaKind.ESP_OUT && sas.host[y] === this.linkHost[l]) this.confirm(y, id);
      else this.pairIfOne(l);
    }
    this.resolvePending(p, kind === SaKind.IKE ? `i${a}:${b}` : `e${a}`);
    if (via === Via.REPLY) this.endTurn(p, true, now);
    else if (this.turn[p] === Turn.WINDOW && this.turnLink[p] === l && this.linkDebt[l] === 0) this.endTurn(p, true, now);
    this.recheck(p, now);
    return id;
  }

  /** Releases the packets that waited on an ambiguous SPI (they run again and find its record). */
  private resolvePending(p: number, key: string): void {
    const m = this.pending[p];
    if (!m || !m.delete(key)) return;
    this.s.count(C.PENDING_RESOLVED);
    this.held.release(p, (e) => e.kind === HoldKind.PENDING && e.key === key);
  }

  /** Out record y and in record x are the two directions of one CHILD_SA, for sure. */
  private confirm(y: number, x: number): void {
    const sas = this.s.sas;
    for (const r of [y, x]) {
      const old = sas.pair[r];
      if (old >= 0 && sas.pair[old] === r) { sas.pair[old] = -1; sas.flags[old] &= ~F_CONFIRMED; }
    }
    sas.pair[y] = x;
    sas.pair[x] = y;
    sas.flags[y] |= F_CONFIRMED;
  }

  /**
   * Inbound ESP on known record x while a turn runs: when x belongs to the probing host, is no
   * confirmed SA's partner and was quiet before the probe, it answers an unconfirmed SA of that host,
   * and the probing SA is the only one it sent on (turnOut): x is its partner, the probe is over.
   */
  knownInbound(x: number, now: number): void {
    const sas = this.s.sas;
    const l = sas.link[x];
    if (l < 0) return;
    const p = this.linkPeer[l];
    if (this.turn[p] !== Turn.PROBE || this.turnLink[p] !== l || this.turnOf(p, now) !== Turn.PROBE) return;
    const y = this.turnOut[p];
    if (y < 0 || sas.kind[y] !== SaKind.ESP_OUT || this.placedInTurn[p].includes(x)) return;
    // An SA already confirmed as another SA's partner answers that SA's packets, not the probe's.
    const z = sas.pair[x];
    if (z >= 0 && sas.pair[z] === x && (sas.flags[z] & F_CONFIRMED) !== 0) return;
    // A push stream on x would be no answer: x must have been quiet for probe_ms before the probe.
    if (sas.last[x] > this.turnStart[p] - this.t.probe_ms) return;
    this.confirm(y, x);
    this.s.count(C.PROBE_ANSWERED);
    this.endTurn(p, true, now);
  }

  /** Elimination after the books changed: ambiguous SPIs go to the only host still owed, if it is owed enough. */
  recheck(p: number, now: number): void {
    if (this.rechecking) return; // assign() below calls back in; the loop here sees its effect
    this.rechecking = true;
    try {
      for (;;) {
        const m = this.pending[p];
        if (!m || m.size === 0) return;
        const l = this.soleDebtor(p);
        if (l < 0 || m.size > this.linkDebt[l]) return;
        let oldest: Pending | null = null;
        for (const e of m.values()) if (!oldest || e.first < oldest.first) oldest = e;
        if (this.assign(l, oldest!.kind, oldest!.a, oldest!.b, oldest!.rh, oldest!.rl, Via.ELIMINATION, now) < 0) {
          // Refused (a cap): it stays ambiguous and waits; nothing else can be placed before it.
          return;
        }
      }
    } finally {
      this.rechecking = false;
    }
  }


  /**
   * The host spoke first on an IKE SA rekeyed inside encrypted payload (record `ike`, both SPIs seen
   * in cleartext): one owed SA settled exactly, and the server's messages waiting on it go through.
   */
  outboundIke(ike: number, now: number): void {
    const sas = this.s.sas;
    const l = this.link(sas.server[ike], sas.host[ike], sas.pub[ike]);
    if (l < 0) return;
    const p = this.linkPeer[l];
    sas.via[ike] = Via.OUTBOUND;
    if (this.linkDebt[l] > 0) { this.setDebt(l, this.linkDebt[l] - 1); this.s.count(C.LEARNED_OUTBOUND); }
    this.resolvePending(p, `i${sas.a[ike]}:${sas.b[ike]}`);
    if (this.turn[p] === Turn.WINDOW && this.turnLink[p] === l && this.linkDebt[l] === 0) this.endTurn(p, true, now);
    this.recheck(p, now);
  }

  /** An operator pinned record `id` (an inbound ESP SPI) to its host: it settles one owed SA. */
  pinned(id: number, now: number): void {
    const sas = this.s.sas;
    const l = this.link(sas.server[id], sas.host[id], sas.pub[id]);
    if (l < 0) return;
    if (this.linkDebt[l] > 0) this.setDebt(l, this.linkDebt[l] - 1);
    this.resolvePending(this.linkPeer[l], `e${sas.a[id]}`);
    this.pairIfOne(l);
    this.recheck(this.linkPeer[l], now);
  }

  /** Ends turns past their deadline, drops held packets past theirs, forgets quiet ambiguous SPIs. */
  tick(now: number): void {
    const idle = this.t.pending_idle_s * 1000;
    for (const p of this.busy) {
      this.turnOf(p, now);
      this.held.dropExpired(p, now);
      const m = this.pending[p];
      if (m) {
        for (const [key, e] of m) {
          if (now - e.last > idle) { m.delete(key); this.s.count(C.PENDING_EXPIRED); }
        }
        if (m.size === 0) this.pending[p] = null;
      }
      if (this.turn[p] === Turn.NONE && this.held.size(p) === 0 && !this.pending[p]) this.busy.delete(p);
    }
  }

  /** Drops everything held (shutdown): a held packet never leaves untranslated. */
  dropAllHeld(): void {
    this.held.dropAll();
  }

  /** Pending SPIs of a peer (listing). */
  pendingOf(p: number): Pending[] {
    return [...(this.pending[p]?.values() ?? [])];
  }

  heldOf(p: number): number {
    return this.held.size(p);
  }
}
