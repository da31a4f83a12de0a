/**
 * Who owns an inbound SPI nobody has seen in cleartext. Per (public, server) "peer"; docs/nat.md has
 * the state machine, every counter and the argument for why it never routes to a wrong host.
 *
 * The books: every SA-creating exchange a host has with a server (IKEv2 IKE_AUTH once per IKE SA,
 * each CREATE_CHILD_SA, each IKEv1 Quick Mode; retransmissions counted once by message ID) makes the
 * host *owed* one inbound SA. Owed counts only over-count (a failed exchange stays owed until the
 * host's last IKE SA to that server idles out), so "only one host is owed anything" is a fact, never
 * a guess. An unknown inbound SPI from the server then gets exactly one owner:
 * 1. REPLY: an owed host's packet started a probe, and this is the first new SPI the server used
 *    since (or an ambiguous one that was quiet before the probe); likewise the first new SPI after a
 *    window's exchange completed (WINDOW).
 * 2. ELIMINATION: exactly one host is owed, and no more unknown SPIs are waiting than it is owed.
 * 3. Otherwise it is ambiguous: its packets are held (bounded) until 1 or 2 resolves it, then dropped.
 * Learning turns (turns.ts) keep 1 and 2 available: while one runs, other hosts' SA-creating
 * exchanges and other owed hosts' ESP wait, so the next new SPI has one possible owner.
 */
import { SaKind, Via, F_LEARNED, F_CONFIRMED } from './table';
import { C, refusal } from './counters';
import type { Decision } from '../engine/stage';
import { HoldKind } from './held';
import { Turn, Turns, type Pending } from './turns';

/** Returned by Learning.inbound() when the packet was held as ambiguous (the decision says HOLD). */
export const HELD = refusal(C.HELD);

/** Inbound packets held per ambiguous SPI (the rest are dropped, counted). */
const HELD_PER_PENDING = 16;

export class Learning extends Turns {
  private rechecking = false;

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
    s.onSaEvent?.('learned', id);
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
    this.s.onSaEvent?.('paired', x);
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

