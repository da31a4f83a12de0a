/**
 * Tun: a TUN device (IFF_TUN | IFF_NO_PI) as a packet source with the same Batch shape as NfQueue.
 *
 * Flow: the addon reads up to batchSize packets into its slab (M_HOOK = 0xffffffff, M_ID = a sequence
 * number, M_INDEV = the device's ifindex), calls onBatch once, then writes every V_ACCEPT packet back
 * into the device (its rewritten length when OUT_REWRITTEN) and drops the rest.
 *
 * Limits, by nature of TUN: there is no skb mark, so OUT_SET_MARK cannot be carried (counted as
 * marksIgnored); V_QUEUE / V_REPEAT mean nothing here and drop. A held packet is not in any kernel
 * queue: release() needs its bytes (payload) to write it, and drops it otherwise (counted).
 */
import { V_ACCEPT, type Batch } from './batch-layout';
import { loadBinding, type NativeBinding, type NativeTun, type NativeTunStats } from './binding';

export interface TunOptions {
  /** Device name; created when missing, attached when it exists (persistent). Empty: the kernel picks tunN. */
  name?: string;
  batchSize?: number;
  /** Largest packet read (default 65535). */
  maxPacket?: number;
  maxRounds?: number;
  defaultVerdict?: number;
  /** One queue of a multi-queue device (IFF_MULTI_QUEUE; workers: N opens one per worker thread). */
  multiQueue?: boolean;
}

export interface TunStats extends NativeTunStats {
  releasedWithoutPayload: number;
}

export class Tun {
  private closed = false;
  private releasedWithoutPayload = 0;

  private constructor(private readonly native: NativeTun, readonly batch: Batch) {}

  static open(opts: TunOptions, onBatch: (b: Batch) => void, binding?: NativeBinding): Tun {
    const b = binding ?? loadBinding();
    const batch: { slab: Uint8Array; meta: Uint32Array; count: number } = { slab: new Uint8Array(0), meta: new Uint32Array(0), count: 0 };
    const native = new b.Tun({ ...opts }, (count: number) => {
      batch.count = count;
      onBatch(batch);
    });
    batch.slab = native.slab;
    batch.meta = native.meta;
    return new Tun(native, batch);
  }

  get name(): string {
    return this.native.name;
  }

  get ifindex(): number {
    return this.native.ifindex;
  }

  /** Finishes a held packet: an accepted one is written into the device (marks cannot be carried). */
  release(_id: number, verdict: number, _mark = -1, payload: Uint8Array | null = null): boolean {
    if (this.closed || verdict !== V_ACCEPT) return false;
    if (!payload) {
      this.releasedWithoutPayload++;
      return false;
    }
    return this.native.write(payload);
  }

  /** Writes an IP packet into the device (the kernel receives it as if from the tunnel). */
  write(packet: Uint8Array): boolean {
    return !this.closed && this.native.write(packet);
  }

  stats(): TunStats {
    return { ...this.native.stats(), releasedWithoutPayload: this.releasedWithoutPayload };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }
}
