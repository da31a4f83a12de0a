/**
 * NAT state as other threads see it (workers: N). The owner thread (the main thread) is the only
 * writer of record identity (key, host, pub, flags, pair, link, IKE responder SPI) and of the index;
 * worker threads read it through SharedSaView for the fast path and hand the owner every packet that
 * would need a write. docs/nat.md "Workers and the memory model" explains why a reader never acts on
 * a torn record.
 */
import { KeyIndex } from './keyindex';
import { EPOCH, type SaKind, type SharedSaArrays } from './table';

/** Everything a worker needs of the owner's NAT state; travels by postMessage, memory stays shared. */
export interface SharedNatMemory {
  /** Names one NatState's memory (a reload that keeps the NAT stage sends the same id again). */
  id: number;
  sas: SharedSaArrays;
  /**
   * [0]: learning turns running (inbound ESP passes learning.knownInbound while any runs);
   * [1]: 1 while the owner's NatStage is an HA standby (passive): workers then decide nothing and hand
   * every NAT packet to the owner, which drops and counts it (nat.ha_standby).
   */
  turns: Int32Array;
  /** Per learning link: > 0 while its host is owed an SA (an unconfirmed outbound SA must see learning). */
  linkOwed: Int32Array;
  /** The public addresses, by index (config order). */
  publics: number[];
}

export function sharedLearningMemory(maxLinks: number): { turns: Int32Array; linkOwed: Int32Array } {
  return {
    turns: new Int32Array(new SharedArrayBuffer(8)),
    linkOwed: new Int32Array(new SharedArrayBuffer(Math.max(16, maxLinks) * 4)),
  };
}

/**
 * A reader's view of a shared SaTable. lookup() answers from one consistent state of a record:
 * Fast path (the table at rest): an even epoch e was read; the index is probed and the record's
 * fields read; the epoch is read again and must still be e. The epoch only grows (+1 as the owner
 * begins an add or a remove, index doubling included, +1 when it is done; 2^31 of them before it
 * could show e again), so no write touched anything read in between. e is read at the lookup's
 * start, or once at the start of a batch (batchStart(): a lookup then costs one atomic read, and
 * the window it checks runs from the batch's start, or its last change, to the lookup's end).
 * When the epoch was odd or moved (the owner is adding or removing SAs), the per-record path:
 *   1. the index maps the key to id (the id may be stale: the record removed and reused since);
 *   2. s1 = seq[id], even (no add/remove of this record under way);
 *   3. the index slot still maps the key to id: the owner removes a key from the index before it
 *      touches the record and adds it only once the record is complete, so at this moment record
 *      id has this key, and any change after s1 moves seq;
 *   4. the fields are read, then seq[id] must still be s1.
 * Any doubt is a miss: the caller then hands the packet to the owner, who decides under its own
 * single-threaded rules. (Step 3 re-reads one index slot, already in cache, instead of the record's
 * five key fields, each another cache miss on a large table.) Atomics.load is a call into a V8
 * builtin (~5 ns, not inlined in Node 20) and the compiler moves no typed-array read across it:
 * what keeps the plain reads in between in place, and what the fast path saves four of.
 */
export class SharedSaView {
  private readonly index: KeyIndex;
  private readonly m: SharedSaArrays;
  // The arrays as fields of this class: the object postMessage delivers has no stable shape, and
  // reading through it per packet costs several times the lookup itself.
  private readonly seq: Int32Array;
  private readonly epoch: Int32Array;
  private readonly hosts: Uint32Array;
  private readonly flagsA: Uint8Array;
  private readonly pairs: Int32Array;
  private readonly links: Int32Array;
  private readonly rhs: Uint32Array;
  private readonly rls: Uint32Array;
  /** The fields lookup() read, valid until the next lookup(). */
  host = 0;
  flags = 0;
  pair = -1;
  link = -1;
  rh = 0;
  rl = 0;
  /** Misses caused by a record changing under the reader (statistics for the stress test and stats). */
  raced = 0;
  /** Lookups that met the owner writing (the epoch odd or moved) and took the per-record path. */
  slow = 0;

  constructor(m: SharedSaArrays) {
    this.m = m;
    this.index = new KeyIndex(0, m.index);
    this.seq = m.seq;
    this.epoch = m.epoch;
    this.hosts = m.host; this.flagsA = m.flags; this.pairs = m.pair; this.links = m.link; this.rhs = m.rh; this.rls = m.rl;
  }

  get arrays(): SharedSaArrays { return this.m; }

  /** An even epoch read since batchStart() (valid while atRest), or nothing: lookup() reads its own. */
  private restEpoch = 0;
  private atRest = false;

  /** Reads the epoch once for the lookups until batchEnd() (each then reads it only after its fields). */
  batchStart(): void {
    const e = Atomics.load(this.epoch, EPOCH);
    this.restEpoch = e;
    this.atRest = (e & 1) === 0;
  }

  batchEnd(): void { this.atRest = false; }

  lookup(kind: SaKind, pub: number, server: number, a: number, b: number): number {
    let e1 = this.restEpoch;
    if (!this.atRest) e1 = Atomics.load(this.epoch, EPOCH);
    if ((e1 & 1) === 0) {
      const id = this.index.getQuiet(server, a, b, (pub << 8) | kind);
      let host = 0, flags = 0, pair = -1, link = -1, rh = 0, rl = 0;
      if (id >= 0) { host = this.hosts[id]; flags = this.flagsA[id]; pair = this.pairs[id]; link = this.links[id]; rh = this.rhs[id]; rl = this.rls[id]; }
      const e2 = Atomics.load(this.epoch, EPOCH);
      if (e2 === e1) {
        // At rest from e1's read to here: an absent key is a miss, a found one is this record.
        if (id >= 0) { this.host = host; this.flags = flags; this.pair = pair; this.link = link; this.rh = rh; this.rl = rl; }
        return id;
      }
      // The owner wrote meanwhile: this lookup takes the per-record path; the next ones of the batch
      // check from here (e2, when even).
      if (this.atRest) { this.restEpoch = e2; this.atRest = (e2 & 1) === 0; }
    }
    this.slow++;
    return this.lookupChecked(kind, pub, server, a, b);
  }

  /** The per-record path: correct while the owner writes (see the class comment). */
  private lookupChecked(kind: SaKind, pub: number, server: number, a: number, b: number): number {
    const id = this.index.getShared(server, a, b, (pub << 8) | kind);
    if (id < 0) return -1;
    const slot = this.index.lastSlot;
    const seq = this.seq;
    const s1 = Atomics.load(seq, id);
    if ((s1 & 1) !== 0) { this.raced++; return -1; }
    if (!this.index.slotHolds(slot, server, a, b, (pub << 8) | kind, id)) { this.raced++; return -1; }
    const host = this.hosts[id], flags = this.flagsA[id], pair = this.pairs[id], link = this.links[id], rh = this.rhs[id], rl = this.rls[id];
    if (Atomics.load(seq, id) !== s1 || !this.index.unchangedSinceLookup()) { this.raced++; return -1; }
    this.host = host; this.flags = flags; this.pair = pair; this.link = link; this.rh = rh; this.rl = rl;
    return id;
  }
}
