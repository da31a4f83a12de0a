/**
 * Verdict encoding helpers over a batch's meta slots (the layout is in batch-layout.ts).
 * The verdict word is the kernel's: NF_QUEUE carries its target queue in bits 16..31.
 */
import {
  M_LENGTH, M_NEW_LENGTH, M_OUT_FLAGS, M_VERDICT, M_VMARK, META_STRIDE, OUT_REWRITTEN, OUT_SET_MARK,
  V_ACCEPT, V_DROP, V_HOLD, V_QUEUE, V_REPEAT,
} from './batch-layout';

/** NF_QUEUE to queue `n`: `(n << 16) | NF_QUEUE`, as the kernel's NF_QUEUE_NR(). */
export function queueVerdict(n: number): number {
  return ((n & 0xffff) << 16 | V_QUEUE) >>> 0;
}

/** The plain verdict code (low 16 bits) and the target queue for NF_QUEUE. */
export function decodeVerdict(v: number): { code: number; queue: number } {
  return { code: v & 0xffff, queue: v >>> 16 };
}

export function verdictName(v: number): string {
  switch (v & 0xffff) {
    case V_DROP: return 'drop';
    case V_ACCEPT: return 'accept';
    case V_QUEUE: return `queue ${v >>> 16}`;
    case V_REPEAT: return 'repeat';
    case V_HOLD: return 'hold';
    default: return `unknown(${v})`;
  }
}

/**
 * Writes packet i's verdict. mark < 0 keeps the packet's mark; newLength >= 0 means the payload was
 * rewritten in place (bytes at M_OFFSET, at most M_CAPACITY) and has this length now.
 */
export function setVerdict(meta: Uint32Array, i: number, verdict: number, mark = -1, newLength = -1): void {
  const b = i * META_STRIDE;
  let flags = 0;
  meta[b + M_VERDICT] = verdict;
  if (mark >= 0) { flags |= OUT_SET_MARK; meta[b + M_VMARK] = mark >>> 0; }
  if (newLength >= 0) { flags |= OUT_REWRITTEN; meta[b + M_NEW_LENGTH] = newLength; }
  else meta[b + M_NEW_LENGTH] = meta[b + M_LENGTH]!;
  meta[b + M_OUT_FLAGS] = flags;
}

/** What a source will send for packet i (for tests and tools). */
export function readVerdict(meta: Uint32Array, i: number): { verdict: number; mark: number; newLength: number } {
  const b = i * META_STRIDE;
  const f = meta[b + M_OUT_FLAGS]!;
  return {
    verdict: meta[b + M_VERDICT]!,
    mark: f & OUT_SET_MARK ? meta[b + M_VMARK]! : -1,
    newLength: f & OUT_REWRITTEN ? meta[b + M_NEW_LENGTH]! : -1,
  };
}
