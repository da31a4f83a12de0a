/**
 * A fake NativeBinding for tests without root or a built addon. It behaves like the addon as seen from
 * JavaScript: one slab and one meta array per queue, created at open; feed() writes packets into slots
 * (64 bytes of head-room each), fills the "in" slots, pre-fills the "out" slots with the default
 * verdict, calls the batch handler once, and records every verdict the addon would send.
 *
 *   const fake = new FakeBinding();
 *   const q = NfQueue.open({ queue: 3 }, (b) => engine.handleBatch(src, b), fake);
 *   const sent = fake.queue(3).feed([{ bytes: pkt, indev: 2 }]);   // → [{ id, verdict, mark, payload }]
 */
import {
  LAYOUT, M_CAPACITY, M_HOOK, M_HW_PROTO, M_ID, M_INDEV, M_IN_FLAGS, M_LENGTH, M_MARK, M_NEW_LENGTH, M_OFFSET,
  M_ORIG_LENGTH, M_OUTDEV, M_OUT_FLAGS, M_SKB_FLAGS, M_VERDICT, M_VMARK, META_STRIDE, IN_HAS_MARK,
  OUT_REWRITTEN, OUT_SET_MARK, V_ACCEPT, V_HOLD,
} from './batch-layout';
import type {
  NativeBinding, NativeQueue, NativeQueueOptions, NativeQueueStats, NativeTun, NativeTunOptions, NativeTunStats,
} from './binding';

/** The kernel's hook number for forwarded packets (engine/stage.ts HOOK_FORWARD). */
const NF_INET_FORWARD = 2;

const HEADROOM = 64;

export interface FakePacket {
  bytes: Uint8Array;
  id?: number;
  mark?: number;
  indev?: number;
  outdev?: number;
  hook?: number;
  hwProto?: number;
  skbFlags?: number;
}

/** A verdict as the addon would send it: mark -1 = kept; payload = the rewritten bytes (a copy). */
export interface SentVerdict {
  id: number;
  verdict: number;
  mark: number;
  payload: Uint8Array | null;
  /** true when it came from release() (a held packet), false when from a batch. */
  released: boolean;
}

/** Fills a batch from packets and reads back its verdicts; shared by the fake queue and fake TUN. */
class FakeSource {
  readonly slab: Uint8Array;
  readonly meta: Uint32Array;
  readonly sent: SentVerdict[] = [];
  readonly held = new Set<number>();
  closed = false;
  protected nextId = 1;
  protected received = 0;
  protected batches = 0;

  constructor(readonly batchSize: number, readonly slotSize: number, protected readonly defaultVerdict: number,
    protected readonly onBatch: (count: number) => void, private readonly hook: number) {
    this.slab = new Uint8Array(slotSize * batchSize);
    this.meta = new Uint32Array(META_STRIDE * batchSize);
  }

  /** Runs one batch (at most batchSize packets) and returns the verdicts it produced. */
  feed(packets: FakePacket[]): SentVerdict[] {
    this.run(packets);
    const m = this.meta;
    const out: SentVerdict[] = [];
    for (let i = 0; i < packets.length; i++) {
      const b = i * META_STRIDE;
      const v = m[b + M_VERDICT]!;
      const f = m[b + M_OUT_FLAGS]!;
      if (v === V_HOLD) {
        this.held.add(m[b + M_ID]!);
        continue;
      }
      const payload = f & OUT_REWRITTEN
        ? this.slab.slice(m[b + M_OFFSET]!, m[b + M_OFFSET]! + Math.min(m[b + M_NEW_LENGTH]!, m[b + M_CAPACITY]!))
        : null;
      out.push({ id: m[b + M_ID]!, verdict: v, mark: f & OUT_SET_MARK ? m[b + M_VMARK]! : -1, payload, released: false });
    }
    this.sent.push(...out);
    return out;
  }

  /**
   * Runs one batch as the addon does and keeps nothing: the verdicts stay in meta (read them there),
   * nothing is recorded or allocated per packet (benchmarks: the addon sends verdicts and rewritten
   * bytes straight from meta and slab, so a fake that builds objects would charge the benchmark's
   * threads, and the garbage collector's, for work a deployment never does). Held packets are not
   * tracked. Returns the packet count.
   */
  drive(packets: readonly FakePacket[]): number {
    this.run(packets);
    return packets.length;
  }

  /** Lays packets into the slab and meta as the addon would, then calls the batch handler. */
  private run(packets: readonly FakePacket[]): void {
    if (this.closed) throw new Error('fake source is closed');
    if (packets.length > this.batchSize) throw new Error(`feed: ${packets.length} packets > batch size ${this.batchSize}`);
    const m = this.meta;
    for (let i = 0; i < packets.length; i++) {
      const p = packets[i]!;
      const off = i * this.slotSize + HEADROOM;
      const len = Math.min(p.bytes.length, this.slotSize - HEADROOM);
      this.slab.set(len === p.bytes.length ? p.bytes : p.bytes.subarray(0, len), off);
      const b = i * META_STRIDE;
      m[b + M_ID] = p.id ?? this.nextId;
      this.nextId = m[b + M_ID]! + 1;
      m[b + M_OFFSET] = off;
      m[b + M_LENGTH] = len;
      m[b + M_ORIG_LENGTH] = p.bytes.length;
      m[b + M_MARK] = p.mark ?? 0;
      m[b + M_INDEV] = p.indev ?? 0;
      m[b + M_OUTDEV] = p.outdev ?? 0;
      m[b + M_HOOK] = p.hook ?? this.hook;
      m[b + M_HW_PROTO] = p.hwProto ?? 0x0800;
      m[b + M_SKB_FLAGS] = p.skbFlags ?? 0;
      m[b + M_CAPACITY] = this.slotSize - HEADROOM;
      m[b + M_IN_FLAGS] = p.mark !== undefined ? IN_HAS_MARK : 0;
      m[b + M_VERDICT] = this.defaultVerdict;
      m[b + M_VMARK] = 0;
      m[b + M_OUT_FLAGS] = 0;
      m[b + M_NEW_LENGTH] = len;
    }
    this.received += packets.length;
    this.batches++;
    this.onBatch(packets.length);
  }

  release(id: number, verdict: number, mark: number, payload?: Uint8Array | null): boolean {
    if (this.closed) return false;
    this.held.delete(id);
    this.sent.push({ id, verdict, mark: mark < 0 ? -1 : mark >>> 0, payload: payload ? payload.slice() : null, released: true });
    return true;
  }

  close(): void {
    this.closed = true;
  }
}

export class FakeQueue extends FakeSource implements NativeQueue {
  readonly rcvbufBytes: number;
  readonly copyRange: number;

  constructor(readonly opts: NativeQueueOptions, onBatch: (count: number) => void) {
    const copyRange = opts.copyRange || 65531;
    super(opts.batchSize ?? 64, (HEADROOM + 512 + copyRange + 256 + 63) & ~63, opts.defaultVerdict ?? V_ACCEPT, onBatch, NF_INET_FORWARD);
    this.copyRange = copyRange;
    this.rcvbufBytes = 2 * (opts.rcvbufBytes ?? 4 << 20);
  }

  stats(): NativeQueueStats {
    const verdicts = this.sent.length;
    return {
      received: this.received, batches: this.batches, verdicts, sendmsgCalls: this.batches, batchVerdicts: 0,
      errors: 0, enobufs: 0, heldOutstanding: this.held.size, truncated: 0, unparsed: 0, unverdicted: 0, badVerdicts: 0, badLengths: 0, badReleases: 0, repeatedEarly: 0, lastErrno: 0,
    };
  }
}

export class FakeTun extends FakeSource implements NativeTun {
  readonly name: string;
  readonly ifindex: number;
  readonly written: Uint8Array[] = [];

  constructor(opts: NativeTunOptions, onBatch: (count: number) => void, ifindex: number) {
    super(opts.batchSize ?? 64, (HEADROOM + (opts.maxPacket ?? 65535) + 256 + 63) & ~63, opts.defaultVerdict ?? V_ACCEPT, onBatch, 0xffffffff);
    this.name = opts.name || 'tun0';
    this.ifindex = ifindex;
  }

  /** Like the addon: accepted packets (rewritten length when flagged) are written to the device. */
  override feed(packets: FakePacket[]): SentVerdict[] {
    const out = super.feed(packets.map((p) => ({ ...p, indev: p.indev ?? this.ifindex })));
    for (const v of out) {
      if (v.verdict !== V_ACCEPT) continue;
      const i = packets.findIndex((_p, k) => this.meta[k * META_STRIDE + M_ID] === v.id);
      const b = i * META_STRIDE;
      const len = v.payload ? v.payload.length : this.meta[b + M_LENGTH]!;
      this.written.push(this.slab.slice(this.meta[b + M_OFFSET]!, this.meta[b + M_OFFSET]! + len));
    }
    return out;
  }

  write(packet: Uint8Array): boolean {
    if (this.closed) return false;
    this.written.push(packet.slice());
    return true;
  }

  stats(): NativeTunStats {
    return { received: this.received, batches: this.batches, written: this.written.length, dropped: 0,
      held: this.held.size, marksIgnored: 0, errors: 0, lastErrno: 0 };
  }
}

export interface FakeInjected { kind: 'ip' | 'l2'; ifindex: number; dst: number; mac: Uint8Array | null; packet: Uint8Array }

export class FakeBinding implements NativeBinding {
  readonly layout: Record<string, number> = { ...LAYOUT };
  readonly queues = new Map<number, FakeQueue>();
  readonly tuns: FakeTun[] = [];
  readonly injected: FakeInjected[] = [];
  /** The next open throws this (e.g. to test "already bound" handling). */
  failNextOpen: Error | null = null;
  /** Interfaces whose injection sockets fail to open (errno ENODEV). */
  readonly missingIfindexes = new Set<number>();
  private fds = new Map<number, number>();
  private nextFd = 100;

  // Arrow-function properties: callable with `new` as the binding's constructors are.
  readonly NfQueue = ((self: FakeBinding) => class extends FakeQueue {
    constructor(opts: NativeQueueOptions, onBatch: (count: number) => void) {
      if (self.failNextOpen) { const e = self.failNextOpen; self.failNextOpen = null; throw e; }
      if (self.queues.get(opts.queue) && !self.queues.get(opts.queue)!.closed) {
        throw new Error(`NFQUEUE queue ${opts.queue} is already bound by another process`);
      }
      super(opts, onBatch);
      self.queues.set(opts.queue, this);
    }
  })(this);

  readonly Tun = ((self: FakeBinding) => class extends FakeTun {
    constructor(opts: NativeTunOptions, onBatch: (count: number) => void) {
      super(opts, onBatch, 1000 + self.tuns.length);
      self.tuns.push(this);
    }
  })(this);

  queue(n: number): FakeQueue {
    const q = this.queues.get(n);
    if (!q) throw new Error(`fake: queue ${n} was never opened`);
    return q;
  }

  openIp(ifindex: number): number {
    if (this.missingIfindexes.has(ifindex)) return -19;
    this.fds.set(this.nextFd, ifindex);
    return this.nextFd++;
  }

  sendIp(fd: number, packet: Uint8Array, dst: number): number {
    const ifindex = this.fds.get(fd);
    if (ifindex === undefined) return 9; // EBADF
    this.injected.push({ kind: 'ip', ifindex, dst, mac: null, packet: packet.slice() });
    return 0;
  }

  openL2(ifindex: number): number {
    return this.openIp(ifindex);
  }

  sendL2(fd: number, ifindex: number, dstMac: Uint8Array, packet: Uint8Array): number {
    if (!this.fds.has(fd)) return 9;
    this.injected.push({ kind: 'l2', ifindex, dst: 0, mac: dstMac.slice(), packet: packet.slice() });
    return 0;
  }

  closeFd(fd: number): void {
    this.fds.delete(fd);
  }

  /** sd_notify datagrams, by socket name (nothing is sent). */
  readonly notified: { socket: string; text: string }[] = [];
  notifySend(socketName: string, message: Uint8Array): number {
    this.notified.push({ socket: socketName, text: Buffer.from(message).toString() });
    return 0;
  }
}
