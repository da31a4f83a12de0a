/**
 * Packets the NAT holds while learning (docs/nat.md, "What is held, for how long"): SA-creating IKE
 * messages behind another host's window or probe, first ESP packets behind another host's probe,
 * and inbound packets on an ambiguous SPI. Per (public, server) lists in arrival order, with caps in
 * all, per LAN host and per peer. Every way out is explicit: released to run again, or dropped
 * (deadline, cap, replaced retransmission, shutdown); a held packet never leaves untranslated.
 */
import { C } from './counters';
import { Verdict, type Decision } from '../engine/stage';
import type { NatState } from './state';

export const enum HoldKind { EXCHANGE = 0, FIRST_ESP = 1, PENDING = 2 }

export interface HeldEntry { handle: number; host: number; kind: HoldKind; key: string; deadline: number }

const NONE: HeldEntry[] = [];

/** Held packets get the engine's timeout this much after ours, so ours (a counted drop) comes first. */
const ENGINE_SLACK_MS = 1000;

export class NatHolds {
  private readonly lists: HeldEntry[][] = [];
  count = 0;
  private readonly perHost = new Map<number, number>();
  private readonly peerOf = new Map<number, number>();
  /** Per peer: when each waiting SA-creating message was first held (kept across release and re-hold). */
  private readonly waitingSince: Map<string, number>[] = [];
  private waitingCount = 0;

  constructor(private readonly s: NatState) {}

  private list(p: number): HeldEntry[] {
    let l = this.lists[p];
    if (!l) { l = []; this.lists[p] = l; }
    return l;
  }

  size(p: number): number { return this.lists[p]?.length ?? 0; }

  /** Packets held for one ambiguous SPI (its key). */
  countKey(p: number, key: string): number {
    let n = 0;
    for (const e of this.lists[p] ?? []) if (e.kind === HoldKind.PENDING && e.key === key) n++;
    return n;
  }

  /**
   * Holds the packet being processed; false when a cap refused it (then it is dropped and counted).
   * host 0: no LAN host caused it (ambiguous inbound). An EXCHANGE with the key of one already held
   * (a retransmission) takes its place and keeps its place in line; the older copy is dropped.
   */
  hold(p: number, host: number, kind: HoldKind, key: string, d: Decision, now: number): boolean {
    const lim = this.s.cfg.limits;
    const t = this.s.cfg.timeouts;
    const list = this.list(p);
    const timeout = kind === HoldKind.PENDING ? t.pending_hold_ms : t.hold_ms;
    if (kind === HoldKind.EXCHANGE) {
      let w = this.waitingSince[p];
      if (!w) { w = new Map(); this.waitingSince[p] = w; }
      if (!w.has(key) && this.waitingCount < lim.max_held) { w.set(key, now); this.waitingCount++; }
      for (const e of list) {
        if (e.kind !== HoldKind.EXCHANGE || e.key !== key || e.host !== host) continue;
        const handle = this.engineHold(timeout);
        if (handle < 0) { this.s.drop(d, C.HOLD_CAP); return false; }
        this.peerOf.delete(e.handle);
        const old = e.handle;
        e.handle = handle;
        e.deadline = now + timeout;
        this.peerOf.set(handle, p);
        this.s.count(C.HOLD_REPLACED);
        this.s.services?.releaseWith(old, Verdict.DROP);
        d.verdict = Verdict.HOLD;
        return true;
      }
    }
    if (this.count >= lim.max_held) { this.s.drop(d, C.HOLD_CAP); return false; }
    if (list.length >= lim.max_held_per_server) { this.s.drop(d, C.HOLD_PEER_CAP); return false; }
    const perHost = this.perHost.get(host) ?? 0;
    if (host !== 0 && perHost >= lim.max_held_per_host) { this.s.drop(d, C.HOLD_HOST_CAP); return false; }
    const handle = this.engineHold(timeout);
    if (handle < 0) { this.s.drop(d, C.HOLD_CAP); return false; }
    list.push({ handle, host, kind, key, deadline: now + timeout });
    this.peerOf.set(handle, p);
    this.count++;
    if (host !== 0) this.perHost.set(host, perHost + 1);
    this.s.count(C.HELD);
    d.verdict = Verdict.HOLD;
    return true;
  }

  private engineHold(timeoutMs: number): number {
    return this.s.services ? this.s.services.hold(timeoutMs + ENGINE_SLACK_MS) : -1;
  }

  /** Takes the entries `pick` chooses out of the list first (a release may run a packet, and hold it, at once). */
  private take(p: number, pick: (e: HeldEntry) => boolean): HeldEntry[] {
    const list = this.lists[p];
    if (!list || !list.some(pick)) return NONE; // the 20 ms tick asks often; most times nothing is due
    const out: HeldEntry[] = [];
    let w = 0;
    for (const e of list) { if (pick(e)) out.push(e); else list[w++] = e; }
    list.length = w;
    for (const e of out) this.forget(e);
    return out;
  }

  /** An SA-creating message got through (or was given up): it no longer waits. */
  passed(p: number, key: string): void {
    if (this.waitingSince[p]?.delete(key)) this.waitingCount--;
  }

  /** How long the longest-waiting SA-creating message of peer p has waited, held or being released. */
  longestWait(p: number, now: number): number {
    let w = 0;
    for (const since of this.waitingSince[p]?.values() ?? []) w = Math.max(w, now - since);
    return w;
  }

  /** Lets the chosen packets run through the pipeline again, in arrival order. */
  release(p: number, pick: (e: HeldEntry) => boolean): void {
    for (const e of this.take(p, pick)) {
      this.s.count(C.RELEASED);
      this.s.services?.release(e.handle);
    }
  }

  /** Drops the packets whose deadline has passed. */
  dropExpired(p: number, now: number): void {
    for (const e of this.take(p, (x) => x.deadline <= now)) {
      if (e.kind === HoldKind.EXCHANGE) this.passed(p, e.key);
      this.s.count(e.kind === HoldKind.PENDING ? C.AMBIGUOUS : C.HOLD_EXPIRED);
      this.s.services?.releaseWith(e.handle, Verdict.DROP);
    }
  }

  /** Drops everything held (shutdown). */
  dropAll(): void {
    for (let p = 0; p < this.lists.length; p++) {
      for (const e of this.take(p, () => true)) this.s.services?.releaseWith(e.handle, Verdict.DROP);
    }
  }

  /** The engine timed a held packet out before we did (it already applied its verdict). */
  onExpired(handle: number): void {
    const p = this.peerOf.get(handle);
    if (p === undefined) return;
    if (this.take(p, (e) => e.handle === handle).length > 0) this.s.count(C.HOLD_EXPIRED);
  }

  private forget(e: HeldEntry): void {
    this.peerOf.delete(e.handle);
    this.count--;
    if (e.host !== 0) {
      const n = (this.perHost.get(e.host) ?? 1) - 1;
      if (n <= 0) this.perHost.delete(e.host); else this.perHost.set(e.host, n);
    }
  }
}
