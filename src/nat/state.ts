/**
 * NAT state: SA and host tables, learning windows, unresolved expectations, held IKE messages,
 * limits and the journal. The stage (stage.ts) reads packets and calls in here; nothing here parses.
 *
 * Learning, per (public, server) "peer":
 * - An SA-creating IKE exchange between host H and server S (either direction) opens the peer's one
 *   window for H. Another host's SA-creating message meanwhile is held, and released when the window
 *   closes (IKE retransmits cover the wait).
 * - In the window, the first inbound unknown SPI from S (ESP, or IKE with both SPIs set: an IKE SA
 *   rekey) belongs to H and closes the window. At window_max_ms it closes without learning and leaves
 *   H an unresolved expectation; a later unknown SPI goes to H only if H is the peer's only host with
 *   one, otherwise it is dropped as ambiguous. Outside that, unknown inbound SPIs create no state.
 */
import { SaKind, SaTable, HostTable, F_LEARNED } from './table';
import { KeyIndex } from './keyindex';
import { Journal, type JournalEntry } from './journal';
import type { NatConfig } from './config';
import { Verdict, type Decision, type StageServices } from '../engine/stage';
import { C, COUNTER_DEFS, refusal } from './counters';

interface Expectation { host: number; expires: number; }

export class NatState {
  readonly sas: SaTable;
  readonly hosts: HostTable;
  readonly publics: Uint32Array;
  readonly hostsPerPub: Int32Array;
  /** (server, pub) → peer id; per-peer window and expectations. */
  readonly peers = new KeyIndex(256);
  peerServer: number[] = [];
  peerPub: number[] = [];
  winOpen: Uint8Array = new Uint8Array(0);
  winHost: number[] = [];
  winDeadline: number[] = [];
  held: number[][] = [];
  expectations: Expectation[][] = [];
  openWindows = 0;
  heldCount = 0;
  private readonly heldPeer = new Map<number, number>();
  /** server → (host → SA count), for max_hosts_per_server (touched on SA creation/removal only). */
  private readonly serverHosts = new Map<number, Map<number, number>>();
  readonly counters = new Float64Array(COUNTER_DEFS.length);
  private ids = new Int32Array(COUNTER_DEFS.length);
  services: StageServices | null = null;
  journal: Journal | null = null;

  constructor(readonly cfg: NatConfig, publics: number[]) {
    this.sas = new SaTable(cfg.limits.max_sas);
    this.hosts = new HostTable(cfg.limits.max_hosts);
    this.publics = Uint32Array.from(publics);
    this.hostsPerPub = new Int32Array(publics.length);
  }

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
    this.count(C.SA_CREATED);
    if (journal) this.journalPut(id);
    return id;
  }

  removeSa(id: number): void {
    const s = this.sas;
    if (s.kind[id] === SaKind.FREE) return;
    const h = this.hosts.find(s.host[id]);
    if (h >= 0) this.hosts.sas[h]--;
    const perServer = this.serverHosts.get(s.server[id] | 0);
    if (perServer) {
      const n = (perServer.get(s.host[id] | 0) ?? 1) - 1;
      if (n <= 0) perServer.delete(s.host[id] | 0); else perServer.set(s.host[id] | 0, n);
      if (perServer.size === 0) this.serverHosts.delete(s.server[id] | 0);
    }
    if (s.kind[id] !== SaKind.ESP_OUT) this.journal?.del(s.kind[id], this.publics[s.pub[id]], s.server[id], s.a[id], s.b[id]);
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
    if (this.journal) this.journal.put(this.journalEntry(id));
  }

  // ---- peers, windows, expectations ----

  peer(server: number, pub: number): number {
    return this.peers.get(server, pub, 0, 0);
  }

  private newPeer(server: number, pub: number): number {
    const p = this.peerServer.length;
    this.peerServer.push(server);
    this.peerPub.push(pub);
    this.winHost.push(0);
    this.winDeadline.push(0);
    this.held.push([]);
    this.expectations.push([]);
    if (p >= this.winOpen.length) {
      const w = new Uint8Array(Math.max(64, p * 2));
      w.set(this.winOpen);
      this.winOpen = w;
    }
    this.peers.set(server, pub, 0, 0, p);
    return p;
  }

  /** Closes an expired window; true when the peer's window is (still) open afterwards. */
  windowOpen(p: number, now: number): boolean {
    if (this.winOpen[p] === 0) return false;
    if (now < this.winDeadline[p]) return true;
    this.closeWindow(p, false, now);
    return false;
  }

  closeWindow(p: number, learned: boolean, now: number): void {
    if (this.winOpen[p] === 0) return;
    this.winOpen[p] = 0;
    this.openWindows--;
    if (learned) {
      this.count(C.WINDOW_LEARNED);
    } else {
      this.count(C.WINDOW_EXPIRED);
      const exps = this.expectations[p];
      const host = this.winHost[p];
      const expires = now + this.cfg.timeouts.expectation_idle_s * 1000;
      const e = exps.find((x) => x.host === host);
      if (e) e.expires = expires; else exps.push({ host, expires });
    }
    const list = this.held[p];
    if (list.length > 0) {
      this.held[p] = [];
      for (const handle of list) {
        this.heldPeer.delete(handle);
        this.heldCount--;
        this.count(C.RELEASED);
        this.services?.release(handle);
      }
    }
  }

  /** Closes (as learned) the peer's window if it is open for `hostAddr`: its exchange is resolved. */
  closeWindowOf(pub: number, server: number, hostAddr: number, now: number): void {
    const p = this.peer(server, pub);
    if (p >= 0 && this.windowOpen(p, now) && this.winHost[p] === hostAddr) this.closeWindow(p, true, now);
  }

  /**
   * An SA-creating IKE message between host `hostAddr` and `server` (either direction). Returns true
   * when it may pass; false when it was held or dropped (the decision is set).
   */
  gate(pub: number, server: number, hostAddr: number, d: Decision, now: number): boolean {
    let p = this.peer(server, pub);
    if (p >= 0 && this.windowOpen(p, now)) {
      if (this.winHost[p] === hostAddr) return true;
      if (this.heldCount >= this.cfg.limits.max_held) { this.drop(d, C.HOLD_CAP); return false; }
      const handle = this.services ? this.services.hold(this.cfg.timeouts.hold_ms) : -1;
      if (handle < 0) { this.drop(d, C.HOLD_CAP); return false; }
      this.held[p].push(handle);
      this.heldPeer.set(handle, p);
      this.heldCount++;
      this.count(C.HELD);
      d.verdict = Verdict.HOLD;
      return false;
    }
    if (this.openWindows >= this.cfg.limits.max_windows) { this.drop(d, C.WINDOW_CAP); return false; }
    if (p < 0) p = this.newPeer(server, pub);
    this.winOpen[p] = 1;
    this.winHost[p] = hostAddr;
    this.winDeadline[p] = now + this.cfg.timeouts.window_max_ms;
    this.openWindows++;
    this.count(C.WINDOW_OPENED);
    return true;
  }

  onHoldExpired(handle: number): void {
    const p = this.heldPeer.get(handle);
    if (p === undefined) return;
    this.heldPeer.delete(handle);
    const list = this.held[p];
    const i = list.indexOf(handle);
    if (i >= 0) list.splice(i, 1);
    this.heldCount--;
    this.count(C.HOLD_EXPIRED);
  }

  /**
   * Who an unknown inbound SPI from `server` belongs to: a record id, or -(counter) when it is
   * refused (ambiguous, no window, cap). Creates state only through a window or a sole expectation.
   */
  learn(kind: SaKind, pub: number, server: number, a: number, b: number, rh: number, rl: number, now: number): number {
    const p = this.peer(server, pub);
    if (p < 0) return refusal(C.UNKNOWN);
    let hostAddr: number;
    let via: C;
    const exps = this.expectations[p];
    if (exps.length > 0) {
      // Drop expired expectations in place (no allocation when none expired).
      let w = 0;
      for (let i = 0; i < exps.length; i++) if (exps[i].expires > now) exps[w++] = exps[i];
      if (w !== exps.length) { exps.length = w; }
    }
    if (this.windowOpen(p, now)) {
      hostAddr = this.winHost[p];
      // Another host whose window closed without learning may still be owed an SPI (found with
      // strongSwan: a client idle after IKE_AUTH lets its window expire, and its first ESP arrives
      // during the next host's window). Then the SPI is not necessarily the window host's: never
      // misroute — a counted drop beats a guess. The window stays open for the host's own SPI.
      for (let i = 0; i < exps.length; i++) if (exps[i].host !== hostAddr) return refusal(C.AMBIGUOUS);
      via = C.WINDOW_LEARNED;
    } else {
      if (exps.length === 0) return refusal(C.UNKNOWN);
      if (exps.length > 1) return refusal(C.AMBIGUOUS);
      hostAddr = exps[0].host;
      via = C.LEARNED_EXPECTATION;
    }
    const h = this.host(hostAddr, now);
    if (h < 0) return refusal(C.HOST_CAP);
    if (this.hosts.pub[h] !== pub) return refusal(C.UNKNOWN); // binding changed since; never route across publics
    const id = this.addSa(kind, pub, server, h, a, b, F_LEARNED, now, false);
    if (id < 0) return id;
    this.sas.rh[id] = rh;
    this.sas.rl[id] = rl;
    this.journalPut(id);
    if (via === C.WINDOW_LEARNED) {
      // The window host's own expectation (from an earlier expired window) is met as well.
      if (exps.length > 0) exps.length = 0;
      this.closeWindow(p, true, now);
    } else { exps.length = 0; this.count(C.LEARNED_EXPECTATION); }
    return id;
  }

  /** Expires windows and expectations; returns peers still busy. */
  tickPeers(now: number): void {
    for (let p = 0; p < this.peerServer.length; p++) {
      if (this.winOpen[p] !== 0) this.windowOpen(p, now);
      const exps = this.expectations[p];
      if (exps.length > 0) {
        const before = exps.length;
        const keep = exps.filter((e) => e.expires > now);
        if (keep.length !== before) {
          for (let i = keep.length; i < before; i++) this.count(C.EXPECTATION_EXPIRED);
          this.expectations[p] = keep;
        }
      }
    }
  }

  /** Expectations of a host on a peer (for listings and tests). */
  expectationHosts(p: number): number[] {
    return this.expectations[p].map((e) => e.host);
  }
}
