/**
 * The batch layout shared with the addon (native/batch_layout.h holds the same numbers; the binding
 * loader compares them at start-up and refuses a mismatched addon).
 *
 * A batch is one slab of packet bytes plus a Uint32Array `meta`, META_STRIDE slots per packet.
 * The source (NFQUEUE or TUN) fills the "in" slots; the engine fills the "out" slots; the source then
 * sends every verdict of the batch at once.
 */
export const META_STRIDE = 16;

// in: filled by the source
export const M_ID = 0;
export const M_OFFSET = 1;
export const M_LENGTH = 2;
export const M_ORIG_LENGTH = 3;
export const M_MARK = 4;
export const M_INDEV = 5;
export const M_OUTDEV = 6;
export const M_HOOK = 7;
export const M_HW_PROTO = 8;
export const M_SKB_FLAGS = 9;
export const M_CAPACITY = 10;
export const M_IN_FLAGS = 11;
// out: filled by the engine
export const M_VERDICT = 12;
export const M_VMARK = 13;
export const M_OUT_FLAGS = 14;
export const M_NEW_LENGTH = 15;

export const IN_TRUNCATED = 1;
export const IN_HAS_MARK = 2;

export const SKB_CSUM_NOTREADY = 1;
export const SKB_GSO = 2;
export const SKB_CSUM_NOT_VERIFIED = 4;

export const V_DROP = 0;
export const V_ACCEPT = 1;
export const V_QUEUE = 3;
export const V_REPEAT = 4;
export const V_HOLD = 0xff;

export const OUT_SET_MARK = 1;
export const OUT_REWRITTEN = 2;

// Netfilter hook numbers (M_HOOK's values) are the kernel's NF_INET_*; stages see them as HOOK_* in
// engine/stage.ts.

/** The numbers above, as the addon exports them, for the load-time comparison. */
export const LAYOUT = {
  META_STRIDE, M_ID, M_OFFSET, M_LENGTH, M_ORIG_LENGTH, M_MARK, M_INDEV, M_OUTDEV, M_HOOK, M_HW_PROTO,
  M_SKB_FLAGS, M_CAPACITY, M_IN_FLAGS, M_VERDICT, M_VMARK, M_OUT_FLAGS, M_NEW_LENGTH,
  V_DROP, V_ACCEPT, V_QUEUE, V_REPEAT, V_HOLD, OUT_SET_MARK, OUT_REWRITTEN,
} as const;

/** One received batch, as handed to the engine. Views only: valid until the handler returns. */
export interface Batch {
  readonly slab: Uint8Array;
  readonly meta: Uint32Array;
  readonly count: number;
}
