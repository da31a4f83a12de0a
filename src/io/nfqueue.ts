/**
 * NfQueue: the typed face of one bound NFQUEUE.
 *
 * Flow: the addon drains the netlink socket into its slab, fills `meta`, and calls onBatch once per
 * batch with a Batch that is the same object every time (views into the same slab; only `count`
 * changes). The handler writes each packet's verdict into `meta` (see verdict.ts) and returns; the
 * addon then sends the whole batch's verdicts. A packet given V_HOLD keeps its queue slot; its bytes
 * are only valid until the handler returns, so whoever holds it copies what it needs and later calls
 * release().
 */
import type { Batch } from './batch-layout';
import { loadBinding, type NativeBinding, type NativeQueue, type NativeQueueOptions, type NativeQueueStats } from './binding';

/** The queue's options, as the addon takes them (documented in binding.ts). */
export type NfQueueOptions = NativeQueueOptions;

export interface NfQueueStats extends NativeQueueStats {
  meanBatch: number;
}

export class NfQueue {
  private closed = false;

  private constructor(readonly queue: number, private readonly native: NativeQueue, readonly batch: Batch) {}

  /**
   * Binds the queue. Throws an Error saying what to do on failure: "needs CAP_NET_ADMIN (run as
   * root)", "queue N is already bound by another process", "the kernel refuses flag CONNTRACK", or
   * "addon not built: run npm run build".
   */
  static open(opts: NfQueueOptions, onBatch: (b: Batch) => void, binding?: NativeBinding): NfQueue {
    const b = binding ?? loadBinding();
    // The native side calls back with the count only; the Batch object is built once here.
    const batch: { slab: Uint8Array; meta: Uint32Array; count: number } = { slab: new Uint8Array(0), meta: new Uint32Array(0), count: 0 };
    const native = new b.NfQueue({ ...opts }, (count: number) => {
      batch.count = count;
      onBatch(batch);
    });
    batch.slab = native.slab;
    batch.meta = native.meta;
    return new NfQueue(opts.queue, native, batch);
  }

  /** Effective receive buffer in bytes (as the kernel reports it). */
  get rcvbufBytes(): number {
    return this.native.rcvbufBytes;
  }

  get batchSize(): number {
    return this.native.batchSize;
  }

  /**
   * Sends one verdict now (a held packet). mark < 0 keeps the packet's mark; payload (from any
   * memory) replaces the packet's bytes. False when the queue is closed.
   */
  release(id: number, verdict: number, mark = -1, payload: Uint8Array | null = null): boolean {
    if (this.closed) return false;
    return this.native.release(id >>> 0, verdict >>> 0, mark, payload);
  }

  stats(): NfQueueStats {
    const s = this.native.stats();
    return { ...s, meanBatch: s.batches ? s.received / s.batches : 0 };
  }

  /** Unbinds. Decide held packets first: the kernel drops whatever is still queued at unbind. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }
}
