/**
 * Packets a stage holds instead of deciding now (e.g. the NAT stage serializing IKE negotiations).
 *
 * A held packet is copied out of the slab (the slab is reused by the next batch) together with the
 * metadata needed to re-run it, and keeps its NFQUEUE verdict slot until a stage releases it or its
 * deadline passes, when it gets its holding stage's timeout verdict (engine.ts). Held packets are capped; what happens
 * at the cap is the holding stage's choice and is counted.
 */
import type { Stage } from './stage';

export interface HeldPacket {
  handle: number;
  /** The stage that held it: a release resumes there, and its failure mode decides a timeout. */
  owner: Stage | null;
  /** Length on the wire when the packet was queued truncated (copy_range, GSO); else = length. */
  wireLength: number;
  /** Index of the source (queue) the packet came from, and its packet id there. */
  source: number;
  id: number;
  bytes: Uint8Array;
  length: number;
  mark: number;
  /** Mark as it was at enqueue time, to tell whether the verdict must set one. */
  originalMark: number;
  indev: number;
  outdev: number;
  hook: number;
  queue: number;
  /** Index of `owner` in the current pipeline (kept right across reloads by the engine). */
  stage: number;
  deadline: number;
  rewritten: boolean;
  /** NFQUEUE skb flags at enqueue (checksum-not-ready decides how a rewrite fixes checksums). */
  skbFlags: number;
}

/** Room for rewrites that grow a held packet. */
const HELD_SLACK = 256;

export class HeldPackets {
  private readonly map = new Map<number, HeldPacket>();
  private nextHandle = 1;
  private earliest = Infinity;

  constructor(public cap: number, public defaultTimeoutMs: number) {}

  get size(): number {
    return this.map.size;
  }

  add(p: Omit<HeldPacket, 'handle' | 'bytes' | 'deadline' | 'length'>, src: Uint8Array, offset: number, length: number,
    now: number, timeoutMs: number | undefined): number {
    if (this.map.size >= this.cap) return -1;
    const bytes = new Uint8Array(length + HELD_SLACK);
    bytes.set(src.subarray(offset, offset + length));
    const handle = this.nextHandle++;
    if (this.nextHandle > 0x7fffffff) this.nextHandle = 1;
    const deadline = now + (timeoutMs ?? this.defaultTimeoutMs);
    this.map.set(handle, { ...p, handle, bytes, length, deadline });
    if (deadline < this.earliest) this.earliest = deadline;
    return handle;
  }

  get(handle: number): HeldPacket | undefined {
    return this.map.get(handle);
  }

  take(handle: number): HeldPacket | undefined {
    const p = this.map.get(handle);
    if (p) this.map.delete(handle);
    return p;
  }

  /** Removes and returns every packet whose deadline is at or before now. */
  expired(now: number): HeldPacket[] {
    if (now < this.earliest) return [];
    const out: HeldPacket[] = [];
    let earliest = Infinity;
    for (const p of this.map.values()) {
      if (p.deadline <= now) out.push(p);
      else if (p.deadline < earliest) earliest = p.deadline;
    }
    for (const p of out) this.map.delete(p.handle);
    this.earliest = earliest;
    return out;
  }

  /** Every held packet, in no particular order (for re-indexing after a reload). */
  all(): IterableIterator<HeldPacket> {
    return this.map.values();
  }

  /** Removes and returns everything (shutdown). */
  drain(): HeldPacket[] {
    const all = [...this.map.values()];
    this.map.clear();
    this.earliest = Infinity;
    return all;
  }

  nextDeadline(): number {
    return this.earliest;
  }
}
