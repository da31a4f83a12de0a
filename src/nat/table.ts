/**
 * SA records and host records in typed arrays (structure of arrays), found through KeyIndex.
 *
 * An SA record is keyed by (public, server, SPI): ESP_IN by the SPI the host chose (ESP server → host),
 * ESP_OUT by the SPI the server chose (ESP host → server; kept for listing and counters), IKE by the
 * 64-bit initiator SPI (IKEv1 cookie), with the responder SPI stored once learned. Record ids are
 * stable (free list), so windows, pins and the journal can name them. Memory: ~60 bytes per record
 * plus 40 bytes of index per record at worst (load 0.5).
 */
import { KeyIndex, type KeyIndexMemory } from './keyindex';

/**
 * Where a table's arrays live. `shared`: every array sits in its own SharedArrayBuffer, sized for the
 * table's cap at once (a shared table never grows: readers in other threads hold views of the arrays);
 * pages the table never touches are never committed by the kernel.
 */
export interface TableMemory { shared: boolean }

/** The arrays of a shared SaTable, as they travel to a worker thread (postMessage keeps the memory shared). */
export interface SharedSaArrays {
  index: KeyIndexMemory;
  kind: Uint8Array; pub: Uint8Array; flags: Uint8Array; server: Uint32Array; host: Uint32Array; a: Uint32Array;
  b: Uint32Array; rh: Uint32Array; rl: Uint32Array; pkts: Float64Array; bytes: Float64Array; created: Float64Array;
  last: Float64Array; pair: Int32Array; via: Uint8Array; link: Int32Array; m1: Uint32Array; m2: Uint32Array;
  seq: Int32Array;
  /** The table's write epoch at [EPOCH] (SaTable.epoch). */
  epoch: Int32Array;
}

/** A typed array of n elements, in a SharedArrayBuffer when shared. */
export function typed<T extends Uint8Array | Uint32Array | Int32Array | Float64Array>(
  C: { new(b: ArrayBufferLike): T; new(n: number): T; BYTES_PER_ELEMENT: number }, n: number, shared: boolean): T {
  return shared ? new C(new SharedArrayBuffer(n * C.BYTES_PER_ELEMENT)) : new C(n);
}

/** Where SaTable.epoch keeps its word. */
export const EPOCH = 16;

export const enum SaKind { FREE = 0, ESP_IN = 1, ESP_OUT = 2, IKE = 3 }

/** Record flags. */
export const F_PINNED = 1;
/** Learned from an inbound packet through a window or an expectation (not seen in cleartext). */
export const F_LEARNED = 2;
/** Came from the journal at start-up. */
export const F_RESTORED = 4;
/** IKE: the IKE_AUTH exchange of this IKE SA was counted as a debt (EAP rounds count once). */
export const F_AUTH_COUNTED = 8;
/**
 * ESP out: its inbound partner (`pair`) is known, seen answering this SA's probe while nothing else of
 * its host could have drawn an answer. Packets on it cannot bring an unknown SPI: they never wait.
 */
export const F_CONFIRMED = 16;
/**
 * IKE: how many SAs its host was owed toward this server (0–7, bits 5–7), kept in the journal with
 * the record so a restart does not forget an SA still owed (which would make elimination unsound).
 */
export const OWED_SHIFT = 5;
export const OWED_MAX = 7;


/** How an inbound record was learned (the `via` column; 0 = seen in cleartext or pinned). */
export const enum Via { NONE = 0, WINDOW = 1, REPLY = 2, ELIMINATION = 3, OUTBOUND = 4 }

function grownF64(a: Float64Array, n: number): Float64Array { const b = new Float64Array(n); b.set(a); return b; }
function grownU32(a: Uint32Array, n: number): Uint32Array { const b = new Uint32Array(n); b.set(a); return b; }
function grownU8(a: Uint8Array, n: number): Uint8Array { const b = new Uint8Array(n); b.set(a); return b; }
function grownI32(a: Int32Array, n: number): Int32Array { const b = new Int32Array(n); b.set(a); return b; }

export class SaTable {
  readonly index: KeyIndex;
  kind: Uint8Array;
  pub: Uint8Array;
  flags: Uint8Array;
  server: Uint32Array;
  host: Uint32Array;
  a: Uint32Array;
  b: Uint32Array;
  /** IKE responder SPI (0 until the response is seen). */
  rh: Uint32Array;
  rl: Uint32Array;
  pkts: Float64Array;
  bytes: Float64Array;
  /** Wall-clock ms at creation (survives restarts through the journal). */
  created: Float64Array;
  /** Monotonic ms of the last packet. */
  last: Float64Array;
  /** ESP: the record of the other direction of the same CHILD_SA (-1 unknown); keeps both alive. */
  pair: Int32Array;
  /** How an inbound record was learned (Via). */
  via: Uint8Array;
  /** The learning books' link (host, server) of this record (books.ts; stable while the record lives). */
  link: Int32Array;
  /** IKE: last request message IDs counted (v2: host's and server's, +1; v1: the last two Quick Modes). */
  m1: Uint32Array;
  m2: Uint32Array;
  /**
   * Per record, a seqlock for readers in other threads (docs/nat.md "Memory model"): odd while add()
   * or remove() rewrites the record, bumped by 2 per lifetime change. A reader that sees the same even
   * value before and after reading a record's fields read one lifetime of it, never a mix.
   */
  seq: Int32Array;
  /**
   * [EPOCH]: a table-wide seqlock over identity (docs/nat.md "Memory model"): odd while add() or
   * remove() runs (the record and the index, a doubling included), +2 per add or remove. A reader
   * that sees the same even value before and after its whole lookup read a table nobody rewrote
   * meanwhile; only when it changed does the reader fall back to the per-record checks (seq, index
   * generation). The owner writes it, every worker reads it per lookup: the word sits 64 bytes
   * into 128 (whatever the allocation's alignment, its cache line holds nothing else).
   */
  readonly epoch: Int32Array;
  private nextFree: Int32Array;
  private freeHead = -1;
  /** Records ever used (ids below this may be live). */
  top = 0;
  count = 0;
  readonly shared: boolean;

  constructor(private readonly maxRecords: number, initial = 1024, mem: TableMemory = { shared: false }) {
    this.shared = mem.shared;
    const sh = mem.shared;
    // A shared table is allocated at its cap: readers keep views, so its arrays may never be replaced.
    const n = sh ? Math.max(16, maxRecords) : Math.max(16, Math.min(initial, maxRecords));
    this.index = new KeyIndex(n * 2, mem);
    this.kind = typed(Uint8Array, n, sh);
    this.pub = typed(Uint8Array, n, sh);
    this.flags = typed(Uint8Array, n, sh);
    this.server = typed(Uint32Array, n, sh);
    this.host = typed(Uint32Array, n, sh);
    this.a = typed(Uint32Array, n, sh);
    this.b = typed(Uint32Array, n, sh);
    this.rh = typed(Uint32Array, n, sh);
    this.rl = typed(Uint32Array, n, sh);
    this.pkts = typed(Float64Array, n, sh);
    this.bytes = typed(Float64Array, n, sh);
    this.created = typed(Float64Array, n, sh);
    this.last = typed(Float64Array, n, sh);
    this.pair = typed(Int32Array, n, sh);
    this.via = typed(Uint8Array, n, sh);
    this.link = typed(Int32Array, n, sh);
    this.m1 = typed(Uint32Array, n, sh);
    this.m2 = typed(Uint32Array, n, sh);
    this.seq = typed(Int32Array, n, sh);
    this.epoch = typed(Int32Array, 32, sh);
    this.nextFree = new Int32Array(n);
  }

  /** The shared arrays, for a worker's SharedSaView (throws on a table that is not shared). */
  sharedArrays(): SharedSaArrays {
    if (!this.shared) throw new Error('SaTable.sharedArrays: the table was not created shared');
    return {
      index: this.index.memory(), kind: this.kind, pub: this.pub, flags: this.flags, server: this.server, host: this.host,
      a: this.a, b: this.b, rh: this.rh, rl: this.rl, pkts: this.pkts, bytes: this.bytes, created: this.created,
      last: this.last, pair: this.pair, via: this.via, link: this.link, m1: this.m1, m2: this.m2, seq: this.seq,
      epoch: this.epoch,
    };
  }

  get capacity(): number { return this.kind.length; }

  /** Approximate bytes held by the table's arrays. */
  get byteLength(): number {
    return this.index.byteLength + this.capacity * (4 + 10 * 4 + 4 * 8 + 4 + 4);
  }

  find(kind: SaKind, pub: number, server: number, a: number, b: number): number {
    return this.index.get(server, a, b, (pub << 8) | kind);
  }

  /** Adds a record; -1 when max_sas is reached. The caller checked that the key is absent. */
  add(kind: SaKind, pub: number, server: number, host: number, a: number, b: number,
    nowMono: number, createdWall: number, flags: number): number {
    let id: number;
    if (this.freeHead >= 0) {
      id = this.freeHead;
      this.freeHead = this.nextFree[id];
    } else {
      if (this.top >= this.maxRecords) return -1;
      if (this.top >= this.capacity) this.grow(Math.min(this.maxRecords, this.capacity * 2));
      id = this.top++;
    }
    if (this.shared) Atomics.add(this.epoch, EPOCH, 1); // odd: readers take the per-record path
    Atomics.add(this.seq, id, 1); // odd: the record is being rewritten
    this.kind[id] = kind;
    this.pub[id] = pub;
    this.flags[id] = flags;
    this.server[id] = server;
    this.host[id] = host;
    this.a[id] = a;
    this.b[id] = b;
    this.rh[id] = 0;
    this.rl[id] = 0;
    this.pkts[id] = 0;
    this.bytes[id] = 0;
    this.created[id] = createdWall;
    this.last[id] = nowMono;
    this.pair[id] = -1;
    this.via[id] = 0;
    this.link[id] = -1;
    this.m1[id] = 0;
    this.m2[id] = 0;
    Atomics.add(this.seq, id, 1); // even again: a complete record, before the index names it
    this.index.set(server, a, b, (pub << 8) | kind, id);
    if (this.shared) Atomics.add(this.epoch, EPOCH, 1);
    this.count++;
    return id;
  }

  remove(id: number): void {
    const kind = this.kind[id];
    if (kind === SaKind.FREE) return;
    if (this.shared) Atomics.add(this.epoch, EPOCH, 1);
    this.index.delete(this.server[id], this.a[id], this.b[id], (this.pub[id] << 8) | kind);
    Atomics.add(this.seq, id, 1);
    this.kind[id] = SaKind.FREE;
    Atomics.add(this.seq, id, 1);
    if (this.shared) Atomics.add(this.epoch, EPOCH, 1);
    this.nextFree[id] = this.freeHead;
    this.freeHead = id;
    this.count--;
  }

  private grow(n: number): void {
    this.seq = grownI32(this.seq, n);
    this.kind = grownU8(this.kind, n);
    this.pub = grownU8(this.pub, n);
    this.flags = grownU8(this.flags, n);
    this.server = grownU32(this.server, n);
    this.host = grownU32(this.host, n);
    this.a = grownU32(this.a, n);
    this.b = grownU32(this.b, n);
    this.rh = grownU32(this.rh, n);
    this.rl = grownU32(this.rl, n);
    this.pkts = grownF64(this.pkts, n);
    this.bytes = grownF64(this.bytes, n);
    this.created = grownF64(this.created, n);
    this.last = grownF64(this.last, n);
    this.pair = grownI32(this.pair, n);
    this.via = grownU8(this.via, n);
    this.link = grownI32(this.link, n);
    this.m1 = grownU32(this.m1, n);
    this.m2 = grownU32(this.m2, n);
    this.nextFree = grownI32(this.nextFree, n);
  }
}

/** LAN hosts: address → sticky public-address binding and SA count. */
export class HostTable {
  readonly index = new KeyIndex(256);
  addr: Uint32Array = new Uint32Array(64);
  pub: Uint8Array = new Uint8Array(64);
  sas: Int32Array = new Int32Array(64);
  last: Float64Array = new Float64Array(64);
  live: Uint8Array = new Uint8Array(64);
  private nextFree: Int32Array = new Int32Array(64);
  private freeHead = -1;
  top = 0;
  count = 0;

  constructor(private readonly maxHosts: number) {}

  find(addr: number): number {
    return this.index.get(addr, 0, 0, 0);
  }

  add(addr: number, pub: number, now: number): number {
    let id: number;
    if (this.freeHead >= 0) {
      id = this.freeHead;
      this.freeHead = this.nextFree[id];
    } else {
      if (this.top >= this.maxHosts) return -1;
      if (this.top >= this.addr.length) {
        const n = this.addr.length * 2;
        this.addr = grownU32(this.addr, n);
        this.pub = grownU8(this.pub, n);
        this.sas = grownI32(this.sas, n);
        this.last = grownF64(this.last, n);
        this.live = grownU8(this.live, n);
        this.nextFree = grownI32(this.nextFree, n);
      }
      id = this.top++;
    }
    this.addr[id] = addr;
    this.pub[id] = pub;
    this.sas[id] = 0;
    this.last[id] = now;
    this.live[id] = 1;
    this.index.set(addr, 0, 0, 0, id);
    this.count++;
    return id;
  }

  remove(id: number): void {
    if (!this.live[id]) return;
    this.index.delete(this.addr[id], 0, 0, 0);
    this.live[id] = 0;
    this.nextFree[id] = this.freeHead;
    this.freeHead = id;
    this.count--;
  }
}
