/**
 * The NAT's books per (public, server) "peer" and per (LAN host, server) "link": how many inbound SAs
 * each host is owed (docs/nat.md, "The books"), its SA records by kind, and which inbound and
 * outbound ESP records are the two directions of one CHILD_SA. Learning (learning.ts) builds on it.
 */
import { SaKind, F_CONFIRMED, F_AUTH_COUNTED, F_RESTORED, OWED_MAX, OWED_SHIFT } from './table';
import { KeyIndex } from './keyindex';
import { C } from './counters';
import type { NatState } from './state';

export const IKEV2_IKE_AUTH = 35;

export abstract class Books {
  private readonly peers = new KeyIndex(256);
  peerServer: number[] = [];
  peerPub: number[] = [];
  /** Links (host ↔ server) of each peer, and how many of them are owed an SA. */
  peerLinks: number[][] = [];
  peerDebtors: number[] = [];

  // ---- links: (server, host, pub) ----
  private readonly links = new KeyIndex(256);
  linkServer: number[] = [];
  linkHost: number[] = [];
  linkPub: number[] = [];
  linkPeer: number[] = [];
  linkDebt: number[] = [];
  linkIke: number[] = [];
  /** The link's IKE records (the newest last): the journal keeps the owed count on them. */
  linkIkeIds: number[][] = [];
  linkIn: number[][] = [];
  linkOut: number[][] = [];
  linkProbeAfter: number[] = [];
  linkProbeFails: number[] = [];
  /** When a packet or exchange of this host last passed while it was owed (its answer may still come). */
  linkLastPass: number[] = [];
  private readonly freeLinks: number[] = [];

  constructor(protected readonly s: NatState) {}

  /** A peer was created (the subclass sizes its per-peer state). */
  protected abstract peerAdded(p: number): void;
  /** True while link l must not be freed (its host holds the peer's learning turn). */
  protected abstract linkBusy(l: number): boolean;
  /** The books of peer p changed in a way that may place waiting SPIs. */
  abstract recheck(p: number, now: number): void;

  peer(server: number, pub: number): number {
    return this.peers.get(server, pub, 0, 0);
  }

  protected peerOf(server: number, pub: number): number {
    let p = this.peers.get(server, pub, 0, 0);
    if (p >= 0) return p;
    p = this.peerServer.length;
    this.peerServer.push(server); this.peerPub.push(pub); this.peerLinks.push([]); this.peerDebtors.push(0);
    this.peers.set(server, pub, 0, 0, p);
    this.peerAdded(p);
    return p;
  }

  link(server: number, host: number, pub: number): number {
    return this.links.get(server, host, pub, 0);
  }

  protected linkOf(server: number, host: number, pub: number): number {
    let l = this.links.get(server, host, pub, 0);
    if (l >= 0) return l;
    const p = this.peerOf(server, pub);
    l = this.freeLinks.pop() ?? this.linkServer.length;
    this.linkServer[l] = server; this.linkHost[l] = host; this.linkPub[l] = pub; this.linkPeer[l] = p;
    this.publishOwed(l, 0);
    this.linkDebt[l] = 0; this.linkIke[l] = 0; this.linkIkeIds[l] = []; this.linkIn[l] = []; this.linkOut[l] = [];
    this.linkProbeAfter[l] = 0; this.linkProbeFails[l] = 0; this.linkLastPass[l] = -Infinity;
    this.links.set(server, host, pub, 0, l);
    this.peerLinks[p].push(l);
    return l;
  }

  protected freeLinkIfEmpty(l: number): void {
    if (this.linkIke[l] > 0 || this.linkIn[l].length > 0 || this.linkOut[l].length > 0 || this.linkDebt[l] > 0) return;
    const p = this.linkPeer[l];
    if (this.linkBusy(l)) return;
    this.links.delete(this.linkServer[l], this.linkHost[l], this.linkPub[l], 0);
    const list = this.peerLinks[p];
    const i = list.indexOf(l);
    if (i >= 0) { list[i] = list[list.length - 1]; list.pop(); }
    this.linkPeer[l] = -1;
    this.freeLinks.push(l);
  }

  protected setDebt(l: number, n: number): void {
    const p = this.linkPeer[l];
    const was = this.linkDebt[l];
    n = Math.max(0, Math.min(n, this.s.cfg.limits.max_sas_per_host));
    if ((was > 0) !== (n > 0)) this.peerDebtors[p] += n > 0 ? 1 : -1;
    this.linkDebt[l] = n;
    this.publishOwed(l, n);
    if (Math.min(was, OWED_MAX) !== Math.min(n, OWED_MAX)) this.keepOwed(l);
  }

  /** Worker threads read a link's debt (shared.ts); links beyond the shared array read as owed there. */
  private publishOwed(l: number, n: number): void {
    const sh = this.s.sharedLearning;
    if (sh && l < sh.linkOwed.length) Atomics.store(sh.linkOwed, l, n);
  }

  /** Writes the link's owed count into its newest IKE record (and so into the journal). */
  private keepOwed(l: number): void {
    const ids = this.linkIkeIds[l];
    if (ids.length === 0) return;
    const sas = this.s.sas;
    const id = ids[ids.length - 1];
    sas.flags[id] = (sas.flags[id] & ~(OWED_MAX << OWED_SHIFT)) | (Math.min(this.linkDebt[l], OWED_MAX) << OWED_SHIFT);
    this.s.journalPut(id);
  }

  /** The one link of the peer that is owed an SA, or -1 (none or several). */
  protected soleDebtor(p: number): number {
    if (this.peerDebtors[p] !== 1) return -1;
    for (const l of this.peerLinks[p]) if (this.linkDebt[l] > 0) return l;
    return -1;
  }

  /** Owed SAs of one host toward a server (listing, tests). */
  owed(server: number, host: number, pub: number): number {
    const l = this.link(server, host, pub);
    return l < 0 ? 0 : this.linkDebt[l];
  }

  // ---------------------------------------------------------------- record bookkeeping (from NatState)

  recordAdded(id: number): void {
    const sas = this.s.sas;
    const l = this.linkOf(sas.server[id], sas.host[id], sas.pub[id]);
    sas.link[id] = l;
    const k = sas.kind[id];
    if (k === SaKind.IKE) {
      this.linkIke[l]++;
      // A restored record brings what its host was owed; a new one carries the count on from here.
      if ((sas.flags[id] & F_RESTORED) !== 0) {
        // A saturated count may stand for more: take the most a host can be owed (an over-count is safe).
        const kept = (sas.flags[id] >> OWED_SHIFT) & OWED_MAX;
        const owed = kept === OWED_MAX ? this.s.cfg.limits.max_sas_per_host : kept;
        if (owed > this.linkDebt[l]) this.setDebt(l, owed);
      } else {
        sas.flags[id] = (sas.flags[id] & ~(OWED_MAX << OWED_SHIFT)) | (Math.min(this.linkDebt[l], OWED_MAX) << OWED_SHIFT);
      }
      this.linkIkeIds[l].push(id);
    }
    else if (k === SaKind.ESP_IN) this.linkIn[l].push(id);
    else if (k === SaKind.ESP_OUT) this.linkOut[l].push(id);
  }

  recordRemoved(id: number): void {
    const sas = this.s.sas;
    const l = this.link(sas.server[id], sas.host[id], sas.pub[id]);
    const partner = sas.pair[id];
    if (partner >= 0 && sas.pair[partner] === id) { sas.pair[partner] = -1; sas.flags[partner] &= ~F_CONFIRMED; }
    if (l < 0) return;
    const k = sas.kind[id];
    if (k === SaKind.IKE) {
      const ids = this.linkIkeIds[l];
      const at = ids.indexOf(id);
      if (at >= 0) ids.splice(at, 1);
      if (--this.linkIke[l] <= 0) {
        this.linkIke[l] = 0;
        // The host's last IKE SA with this server is gone: nothing it negotiated can still be owed.
        if (this.linkDebt[l] > 0) { this.setDebt(l, 0); this.s.count(C.DEBTS_CLEARED); this.recheck(this.linkPeer[l], this.s.now()); }
      }
    } else {
      const list = k === SaKind.ESP_IN ? this.linkIn[l] : this.linkOut[l];
      const i = list.indexOf(id);
      if (i >= 0) { list[i] = list[list.length - 1]; list.pop(); }
    }
    this.freeLinkIfEmpty(l);
  }

  protected unpaired(list: number[]): number {
    const pair = this.s.sas.pair;
    let n = 0;
    for (const id of list) if (pair[id] < 0) n++;
    return n;
  }

  protected firstUnpaired(list: number[]): number {
    const pair = this.s.sas.pair;
    for (const id of list) if (pair[id] < 0) return id;
    return -1;
  }

  /** Pairs the two directions of one CHILD_SA when the link leaves no doubt which records they are. */
  protected pairIfOne(l: number): void {
    if (this.unpaired(this.linkIn[l]) !== 1 || this.unpaired(this.linkOut[l]) !== 1) return;
    const x = this.firstUnpaired(this.linkIn[l]);
    const y = this.firstUnpaired(this.linkOut[l]);
    this.s.sas.pair[x] = y;
    this.s.sas.pair[y] = x;
    this.s.onSaEvent?.('paired', x);
  }

  /**
   * After a journal replay: the owed counts came back with the IKE records; a host with an IKE SA
   * but no inbound ESP SA (an exchange in flight at the stop) is owed one at least.
   */
  afterRestore(): void {
    for (let l = 0; l < this.linkServer.length; l++) {
      if (this.linkPeer[l] < 0) continue;
      if (this.linkIke[l] > 0 && this.linkIn[l].length === 0 && this.linkDebt[l] === 0) this.setDebt(l, 1);
      this.pairIfOne(l);
    }
  }

  /** True when this message starts an SA-creating exchange not counted before (retransmissions are not). */
  protected isNewExchange(ike: number, fromHost: boolean, version: number, exch: number, isResponse: boolean, msgid: number): boolean {
    const sas = this.s.sas;
    if (version === 2) {
      if (isResponse) return false;
      // EAP runs several IKE_AUTH rounds; the CHILD_SA comes with the last: count the IKE SA once.
      if (exch === IKEV2_IKE_AUTH) return (sas.flags[ike] & F_AUTH_COUNTED) === 0;
      return (msgid >>> 0) + 1 > (fromHost ? sas.m1[ike] : sas.m2[ike]);
    }
    // IKEv1 Quick Mode: random message IDs, three messages each; the last two are remembered.
    const m = msgid >>> 0;
    return m !== sas.m1[ike] && m !== sas.m2[ike];
  }

  protected markExchange(ike: number, fromHost: boolean, version: number, exch: number, msgid: number): void {
    const sas = this.s.sas;
    if (version === 2) {
      if (exch === IKEV2_IKE_AUTH) sas.flags[ike] |= F_AUTH_COUNTED;
      else if (fromHost) sas.m1[ike] = (msgid >>> 0) + 1;
      else sas.m2[ike] = (msgid >>> 0) + 1;
      return;
    }
    sas.m2[ike] = sas.m1[ike];
    sas.m1[ike] = msgid >>> 0;
  }
}
