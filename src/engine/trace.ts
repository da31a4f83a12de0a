/**
 * `sluice trace`, `sluice tap` and `sluice replay`: what the pipeline did to each packet.
 *
 * Flow while someone traces (Engine.tracer non-null; otherwise the engine checks one field per batch):
 *   1. before(): for each packet of the batch, classify a copy of its metadata and test every
 *      subscriber's filter; a packet some subscriber wants (and has room for) gets a record with a
 *      copy of its bytes as they arrived; the engine then runs the batch through wrappers of the
 *      stages (cached per pipeline);
 *   2. each wrapper, for a recorded packet only, asks the stage's explain() (rule, mapping, scope)
 *      before process() and notes the decision after it;
 *   3. after(): the verdicts, marks and rewritten bytes from the batch's meta slots complete the
 *      records, which go to their subscribers' queues.
 * Bounded: a subscriber holds at most `max` records; while its queue is full (a slow reader), packets
 * it would want are counted in `dropped` and not copied, so a slow client never slows the engine
 * beyond the filter test. Held packets are traced up to their hold (verdict "hold"); their later
 * re-run is not.
 * Failure: nothing here throws into the batch loop — a filter or explain() that throws is recorded
 * on the trace line, and the stage's own throw still reaches the engine's per-stage handling.
 */
import {
  M_HOOK, M_INDEV, M_LENGTH, M_MARK, M_NEW_LENGTH, M_OFFSET, M_ORIG_LENGTH, M_OUTDEV, M_OUT_FLAGS, M_VERDICT,
  M_VMARK, META_STRIDE, OUT_REWRITTEN, OUT_SET_MARK, type Batch,
} from '../io/batch-layout';
import { Classified, classify } from '../packet/classify';
import type { MatchInput } from '../select/match';
import type { BatchTracer } from './engine';
import type { Decision, PacketContext, Stage } from './stage';

/** What one stage did to a traced packet. */
export interface TraceStep {
  stage: string;
  /** The stage's explain(): rule, mapping, learning state, scope. */
  explain?: Record<string, unknown>;
  /** Verdict code (Verdict.*), or -1 when the stage threw. */
  verdict: number;
  /** Drop reason counter id (verdict DROP). */
  reason: number;
  markValue: number;
  markMask: number;
  rewritten: boolean;
  error?: string;
  /** The drop reason's name, filled in by a worker thread before the record leaves it (its counter ids are its own). */
  reasonName?: string;
}

/** One traced packet. */
export interface TraceRecord {
  time: number;
  queue: number;
  /** The thread that recorded it (workers: N): "w0", "w1", …, or "owner". */
  thread?: string;
  hook: number;
  indev: number;
  outdev: number;
  mark: number;
  /** Bytes as they arrived (a copy), and the length on the wire. */
  bytes: Uint8Array;
  wireLength: number;
  steps: TraceStep[];
  /** Kernel verdict code (V_ACCEPT, V_DROP, V_HOLD). */
  verdict: number;
  /** Mark sent with the verdict, or -1 when the packet keeps its mark. */
  markOut: number;
  /** The bytes sent back when a stage rewrote the packet, else null. */
  after: Uint8Array | null;
}

/** A packet filter: true when the subscriber wants the packet (see trace-filter.ts). */
export type TraceFilter = (p: MatchInput) => boolean;

/** Slots of a subscriber's shared state (TraceSubscriber.state). */
const QUEUED = 0, TAKEN = 1, DROPPED = 2;

/**
 * A subscriber's bounds: packets queued for the client (taken for it and not yet handed over,
 * wherever they are: a batch under way, this queue, on their way from a worker thread), packets
 * taken against `count`, and packets it missed. In an Int32Array so that, with `workers: N`, every
 * worker's subscriber and the main thread's share one (a SharedArrayBuffer, src/cli/trace-workers.ts):
 * the client's bounds hold across all threads at once.
 */
export function traceState(shared = false): Int32Array {
  return new Int32Array(shared ? new SharedArrayBuffer(12) : new ArrayBuffer(12));
}

export class TraceSubscriber {
  readonly records: TraceRecord[] = [];
  private waiter: (() => void) | null = null;

  /** count: packets to trace in all (Infinity: until stopped); state: traceState(). */
  constructor(readonly filter: TraceFilter | null, readonly max: number, readonly count: number, readonly state: Int32Array = traceState()) {}

  /** Packets the filter wanted while the queue was full (not recorded). */
  get dropped(): number { return this.state[DROPPED]!; }
  /** Records handed over so far and under way (counts against `count`). */
  get taken(): number { return this.state[TAKEN]!; }
  /** Packets taken and not yet handed to the client. */
  get queued(): number { return this.state[QUEUED]!; }

  /** True once `count` packets were recorded: the subscriber takes no more. */
  get complete(): boolean { return this.count !== Infinity && this.state[TAKEN]! >= this.count; }

  /** Counts a packet this subscriber missed (a full queue, a filter that threw). */
  miss(): void { Atomics.add(this.state, DROPPED, 1); }

  wants(p: MatchInput): boolean {
    if (this.complete) return false;
    if (this.filter !== null && !this.filter(p)) return false;
    const st = this.state;
    if (Atomics.add(st, QUEUED, 1) >= this.max) { Atomics.sub(st, QUEUED, 1); this.miss(); return false; }
    // Only a finite count is counted against (an unlimited trace never wraps the counter).
    if (this.count !== Infinity && Atomics.add(st, TAKEN, 1) >= this.count) { Atomics.sub(st, TAKEN, 1); Atomics.sub(st, QUEUED, 1); return false; }
    return true;
  }

  /** A packet taken in before() that will not arrive (a tracer fault, a record a thread could not send): its place is given back, the loss counted. */
  cancel(n = 1): void {
    Atomics.sub(this.state, QUEUED, n);
    if (this.count !== Infinity) Atomics.sub(this.state, TAKEN, n);
    Atomics.add(this.state, DROPPED, n);
  }

  push(r: TraceRecord): void {
    this.records.push(r);
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Hands up to n records to the client: their places in the queue are free again. */
  take(n: number): TraceRecord[] {
    const out = this.records.splice(0, n);
    Atomics.sub(this.state, QUEUED, out.length);
    return out;
  }

  /** Resolves when a record arrives or after ms. */
  wait(ms: number): Promise<void> {
    if (this.records.length > 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => { this.waiter = null; resolve(); }, ms);
      this.waiter = () => { clearTimeout(t); resolve(); };
    });
  }
}

/** The part of the engine the tracer attaches to. */
export interface Traceable { tracer: BatchTracer | null }

interface Pending { rec: TraceRecord; base: number; subs: TraceSubscriber[]; sent: boolean }

export class Tracer implements BatchTracer {
  private readonly subs = new Set<TraceSubscriber>();
  private slab: Uint8Array | null = null;
  private readonly byOffset = new Map<number, Pending>();
  private wrappedFor: readonly Stage[] | null = null;
  private wrapped: Stage[] = [];
  private readonly info = new Classified();
  private readonly input: MatchInput & { info: Classified } = { info: this.info, mark: 0, indev: 0, outdev: 0, hook: 0, queue: 0 };

  /** thread: set on every record (workers: N, "w0", "w1", …, and "owner" for the NAT owner thread). */
  constructor(private readonly engine: Traceable, private readonly thread?: string) {}

  get subscribers(): number { return this.subs.size; }

  /** Starts tracing for one more subscriber (the engine begins calling before/after). */
  subscribe(filter: TraceFilter | null, opts: { max?: number; count?: number } = {}): TraceSubscriber {
    return this.attach(new TraceSubscriber(filter, opts.max ?? 1024, opts.count ?? Infinity));
  }

  /** Starts tracing for a subscriber made elsewhere (one that shares its bounds with other threads). */
  attach(s: TraceSubscriber): TraceSubscriber {
    this.subs.add(s);
    this.engine.tracer = this;
    return s;
  }

  /** Stops a subscriber; the last one leaving detaches the tracer (zero cost again). */
  unsubscribe(s: TraceSubscriber): void {
    this.subs.delete(s);
    if (this.subs.size === 0 && this.engine.tracer === this) this.engine.tracer = null;
  }

  /** Tracer faults (a bug): the batch then runs untraced; packets already taken count as dropped for their subscribers. */
  faults = 0;

  before(queue: number, batch: Batch, stages: readonly Stage[]): readonly Stage[] {
    try {
      return this.select(queue, batch, stages);
    } catch {
      this.faults++;
      this.dropPending();
      return stages; // the packets run as if nobody traced
    }
  }

  private select(queue: number, batch: Batch, stages: readonly Stage[]): readonly Stage[] {
    const { slab, meta, count } = batch;
    const p = this.input;
    p.queue = queue;
    for (let i = 0; i < count; i++) {
      const base = i * META_STRIDE;
      const off = meta[base + M_OFFSET]!, len = meta[base + M_LENGTH]!, wire = Math.max(meta[base + M_ORIG_LENGTH]!, len);
      p.mark = meta[base + M_MARK]!;
      p.indev = meta[base + M_INDEV]!;
      p.outdev = meta[base + M_OUTDEV]!;
      p.hook = meta[base + M_HOOK]! | 0;
      classify(this.info, slab, off, len, wire);
      let subs: TraceSubscriber[] | null = null;
      for (const s of this.subs) {
        let want = false;
        try { want = s.wants(p); } catch { s.miss(); }
        if (want) (subs ??= []).push(s);
      }
      if (subs === null) continue;
      this.byOffset.set(off, {
        base, subs, sent: false,
        rec: { time: Date.now(), queue, ...(this.thread === undefined ? {} : { thread: this.thread }), hook: p.hook, indev: p.indev, outdev: p.outdev, mark: p.mark,
          bytes: slab.slice(off, off + len), wireLength: wire, steps: [], verdict: 0, markOut: -1, after: null },
      });
    }
    if (this.byOffset.size === 0) return stages;
    this.slab = slab;
    return this.wrap(stages);
  }

  after(batch: Batch): void {
    const { slab, meta } = batch;
    try {
      for (const [off, pending] of this.byOffset) {
        const { rec, base, subs } = pending;
        rec.verdict = meta[base + M_VERDICT]!;
        const flags = meta[base + M_OUT_FLAGS]!;
        if (flags & OUT_SET_MARK) rec.markOut = meta[base + M_VMARK]!;
        if (flags & OUT_REWRITTEN) rec.after = slab.slice(off, off + meta[base + M_NEW_LENGTH]!);
        for (const s of subs) s.push(rec);
        pending.sent = true;
      }
    } catch {
      this.faults++;
    }
    this.dropPending();
  }

  private dropPending(): void {
    for (const p of this.byOffset.values()) if (!p.sent) for (const s of p.subs) s.cancel();
    this.byOffset.clear();
    this.slab = null;
  }

  private wrap(stages: readonly Stage[]): readonly Stage[] {
    if (this.wrappedFor === stages) return this.wrapped;
    this.wrappedFor = stages;
    this.wrapped = stages.map((st) => ({ name: st.name, failure: st.failure, process: (ctx: PacketContext, d: Decision) => this.step(st, ctx, d) }));
    return this.wrapped;
  }

  private step(st: Stage, ctx: PacketContext, d: Decision): void {
    const pending = ctx.bytes === this.slab ? this.byOffset.get(ctx.offset) : undefined;
    if (pending === undefined) { st.process(ctx, d); return; }
    let explain: Record<string, unknown> | undefined;
    try { explain = st.explain?.(ctx); } catch (e) { explain = { explain_error: (e as Error)?.message ?? String(e) }; }
    const step: TraceStep = { stage: st.name, explain, verdict: -1, reason: 0, markValue: 0, markMask: 0, rewritten: false };
    pending.rec.steps.push(step);
    try {
      st.process(ctx, d);
    } catch (e) {
      step.error = (e as Error)?.message ?? String(e);
      throw e; // the engine fails the packet open or closed as the stage declares
    }
    step.verdict = d.verdict;
    step.reason = d.reason;
    step.markValue = d.markValue;
    step.markMask = d.markMask;
    step.rewritten = d.rewritten;
  }
}

/**
 * A subscriber's records as the chunks of a streamed control-socket answer (control/server.ts
 * streamTo): `{packets, dropped}` as records arrive, an empty one every `heartbeatMs` (so a client
 * that left is noticed and its subscription ends), and `done: true` after `count` packets. The
 * subscription ends however the stream ends (count reached, client gone, server closing).
 */
export async function* traceChunks<T>(tracer: Tracer, sub: TraceSubscriber, toJson: (r: TraceRecord) => T,
  onEnd: () => void = () => {}, heartbeatMs = 1000): AsyncGenerator<{ packets: T[]; dropped: number; done?: true }> {
  try {
    for (;;) {
      await sub.wait(heartbeatMs);
      const recs = sub.take(256);
      // Done once every packet taken against count reached this queue (some may still be on their way from a worker).
      const done = sub.complete && sub.queued === 0;
      yield { packets: recs.map(toJson), dropped: sub.dropped, ...(done ? { done: true as const } : {}) };
      if (done) return;
    }
  } finally {
    tracer.unsubscribe(sub);
    onEnd();
  }
}
