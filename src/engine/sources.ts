/**
 * The engine's face toward packet sources (an NFQUEUE, a TUN device, a worker's forwarded packets):
 * what it needs from one to finish a held packet (VerdictSink), what a source says when it is added
 * (SourceOptions), and what the engine keeps of it (SourceEntry, read per packet by the batch loop
 * and by held-verdicts.ts).
 */
import { V_ACCEPT, V_DROP } from '../io/batch-layout';

/** What the engine needs from a packet source to finish a held packet. */
export interface VerdictSink {
  /** mark < 0 keeps the packet's mark; payload non-null replaces the packet's bytes. */
  release(id: number, verdict: number, mark: number, payload: Uint8Array | null): void;
}

export interface SourceOptions {
  /** Verdict for packets no stage decided (and for the packet of a fail-open stage that threw, if no later stage decides). */
  defaultVerdict: 'accept' | 'drop';
  /** Verdict for packets the packet layer cannot read (counted per reason). */
  onInvalid: 'accept' | 'drop';
  /** The source keeps no copy of held packets (TUN): release() always gets the bytes. */
  releaseNeedsPayload?: boolean;
}

/** A source as the engine keeps it: its verdicts as kernel verdict codes. */
export interface SourceEntry { sink: VerdictSink; queue: number; defaultVerdict: number; onInvalid: number; needsPayload: boolean }

const toVerdict = (v: 'accept' | 'drop'): number => (v === 'accept' ? V_ACCEPT : V_DROP);

export function sourceEntry(sink: VerdictSink, queue: number, o: SourceOptions): SourceEntry {
  return { sink, queue, defaultVerdict: toVerdict(o.defaultVerdict), onInvalid: toVerdict(o.onInvalid),
    needsPayload: o.releaseNeedsPayload ?? false };
}
