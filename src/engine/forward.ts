/**
 * Packets a worker thread hands to the thread that owns a stage's state (workers: N > 1; today the
 * NAT), and the owner's answers. Owner side: each worker is one source of the owner's Engine, whose
 * pipeline holds the owning stages followed by ContinueMarker; a forwarded packet runs through it
 * like a one-packet batch, and its verdict (now, or later for a packet the stage holds) goes back.
 *   worker: stage holds the packet, posts ForwardedPacket ─▶ owner: ForwardedSource.receive()
 *   owner: Engine decides (or holds, then releases)      ─▶ worker: OwnerReply, the held packet re-runs
 */
import {
  M_CAPACITY, M_HOOK, M_ID, M_INDEV, M_LENGTH, M_MARK, M_NEW_LENGTH, M_OFFSET, M_ORIG_LENGTH, M_OUTDEV, M_OUT_FLAGS,
  M_VERDICT, M_VMARK, META_STRIDE, OUT_REWRITTEN, OUT_SET_MARK, V_ACCEPT, V_HOLD,
} from '../io/batch-layout';
import type { Engine } from './engine';
import type { SourceOptions, VerdictSink } from './sources';

/** A packet handed to the owner: the worker's held handle and a number unique to this forward. */
export interface ForwardedPacket {
  handle: number; seq: number; bytes: Uint8Array; mark: number; indev: number; outdev: number; hook: number; queue: number; wire: number;
}

/** The owner's answer; mark -1: unchanged, payload null: bytes unchanged. */
export interface OwnerReply { handle: number; seq: number; verdict: 'accept' | 'drop'; mark: number; payload: Uint8Array | null }

/** One worker as packet sources of the owner's engine (one per queue, for its default verdict). */
export class ForwardedSource implements VerdictSink {
  private readonly sources = new Map<number, number>();
  private readonly meta = new Uint32Array(META_STRIDE);
  private readonly batch: { slab: Uint8Array; meta: Uint32Array; count: number } = { slab: new Uint8Array(0), meta: this.meta, count: 1 };
  /** Owner packet id (meta M_ID) → the forward it answers. */
  private readonly waiting = new Map<number, { handle: number; seq: number }>();
  private nextId = 1;

  /** Packets of unknown queues (a bug) and such the owner could not answer. */
  refused = 0;

  constructor(private readonly engine: Engine, private readonly send: (r: OwnerReply) => void) {}

  addQueue(queue: number, o: SourceOptions): void {
    this.sources.set(queue, this.engine.addSource(this, queue, o));
  }

  receive(p: ForwardedPacket): void {
    const source = this.sources.get(p.queue);
    if (source === undefined) {
      this.refused++;
      this.send({ handle: p.handle, seq: p.seq, verdict: 'drop', mark: -1, payload: null });
      return;
    }
    const m = this.meta;
    const id = this.nextId = (this.nextId + 1) >>> 0 || 1;
    m.fill(0);
    m[M_ID] = id;
    m[M_OFFSET] = 0;
    m[M_LENGTH] = p.bytes.length;
    m[M_CAPACITY] = p.bytes.length;
    m[M_ORIG_LENGTH] = p.wire;
    m[M_MARK] = p.mark;
    m[M_INDEV] = p.indev;
    m[M_OUTDEV] = p.outdev;
    m[M_HOOK] = p.hook;
    this.batch.slab = p.bytes;
    this.waiting.set(id, { handle: p.handle, seq: p.seq });
    this.engine.handleBatch(source, this.batch);
    const verdict = m[M_VERDICT]!;
    if (verdict === V_HOLD) return; // release() answers later
    const flags = m[M_OUT_FLAGS]!;
    this.answer(id, verdict, flags & OUT_SET_MARK ? m[M_VMARK]! : -1, flags & OUT_REWRITTEN ? p.bytes.slice(0, m[M_NEW_LENGTH]!) : null);
  }

  /** The owner's engine ends a packet it held (a release, a timeout, shutdown). */
  release(id: number, verdict: number, mark: number, payload: Uint8Array | null): void {
    this.answer(id, verdict, mark, payload);
  }

  private answer(id: number, verdict: number, mark: number, payload: Uint8Array | null): void {
    const w = this.waiting.get(id);
    if (!w) return;
    this.waiting.delete(id);
    this.send({ handle: w.handle, seq: w.seq, verdict: verdict === V_ACCEPT ? 'accept' : 'drop', mark, payload });
  }
}
