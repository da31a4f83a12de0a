/**
 * NAT state as other threads see it (workers: N). The owner thread (the main thread) is the only
 * writer of record identity (key, host, pub, flags, pair, link, IKE responder SPI) and of the index;
 * worker threads read it through SharedSaView for the fast path and hand the owner every packet that
 * would need a write. docs/nat.md "Workers and the memory model" explains why a reader never acts on
 * a torn record.
 */
import { KeyIndex } from './keyindex';
import type { SaKind, SharedSaArrays } from './table';

/** Everything a worker needs of the owner's NAT state; travels by postMessage, memory stays shared. */
export interface SharedNatMemory {
  /** Names one NatState's memory (a reload that keeps the NAT stage sends the same id again). */
  id: number;
  sas: SharedSaArrays;
  /** [0]: learning turns running (inbound ESP passes learning.knownInbound while any runs). */
  turns: Int32Array;
  /** Per learning link: > 0 while its host is owed an SA (an unconfirmed outbound SA must see learning). */
  linkOwed: Int32Array;
  /** The public addresses, by index (config order). */
  publics: number[];
}

export function sharedLearningMemory(maxLinks: number): { turns: Int32Array; linkOwed: Int32Array } {
  return {
    turns: new Int32Array(new SharedArrayBuffer(4)),
    linkOwed: new Int32Array(new SharedArrayBuffer(Math.max(16, maxLinks) * 4)),
  };
}

/**
 * A reader's view of a shared SaTable. lookup() answers from one consistent lifetime of a record:
 * seq even and unchanged around the reads, and the record's own key equal to the one looked up (the
 * index may name a record that was removed and reused meanwhile). Any doubt is a miss: the caller
 * then hands the packet to the owner, who decides under its own single-threaded rules.
 */
export class SharedSaView {
  private readonly index: KeyIndex;
  private readonly m: SharedSaArrays;
  /** The fields lookup() read, valid until the next lookup(). */
  host = 0;
  flags = 0;
  pair = -1;
  link = -1;
  rh = 0;
  rl = 0;
  /** Misses caused by a record changing under the reader (statistics for the stress test and stats). */
  raced = 0;

  constructor(m: SharedSaArrays) {
    this.m = m;
    this.index = new KeyIndex(0, m.index);
  }

  get arrays(): SharedSaArrays { return this.m; }

  lookup(kind: SaKind, pub: number, server: number, a: number, b: number): number {
    const id = this.index.getShared(server, a, b, (pub << 8) | kind);
    if (id < 0) return -1;
    const m = this.m;
    const s1 = Atomics.load(m.seq, id);
    if ((s1 & 1) !== 0) { this.raced++; return -1; }
    if (m.kind[id] !== kind || m.pub[id] !== pub || m.server[id] !== server || m.a[id] !== a || m.b[id] !== b) {
      this.raced++;
      return -1;
    }
    const host = m.host[id], flags = m.flags[id], pair = m.pair[id], link = m.link[id], rh = m.rh[id], rl = m.rl[id];
    if (Atomics.load(m.seq, id) !== s1) { this.raced++; return -1; }
    this.host = host; this.flags = flags; this.pair = pair; this.link = link; this.rh = rh; this.rl = rl;
    return id;
  }
}
