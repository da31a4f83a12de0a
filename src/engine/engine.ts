/**
 * The batch loop. Flow for one batch from a source (an NFQUEUE or a TUN device):
 *   1. for each packet: point the reusable PacketContext at its bytes in the slab, classify once,
 *      reset the reusable Decision, run the stages in order until one decides;
 *   2. write the verdict, mark, rewrite flag and length into the batch's meta slots;
 *   3. return: the source sends every verdict of the batch at once.
 * Held packets leave the batch (V_HOLD) and get their verdict later through the source's release().
 * Releases asked for while a packet is being processed are queued and run after the batch, because
 * the context and decision objects are shared.
 * Failure (stage.ts StageFailure): a stage that throws fails its packet open or closed as it
 * declares; a held packet's timeout, shutdown and removal by a reload give it its holding stage's
 * timeout verdict; a reload never hands a held packet to a different stage (held-verdicts.ts ends
 * every hold; stage-books.ts keeps the per-stage counts, error log and tick schedule).
 * Truncated packets (copy_range, GSO): the stages decide on the bytes present; a rewrite cannot be
 * sent back (the kernel would cut the packet to the bytes returned), so a rewritten truncated
 * packet is dropped (`engine.truncated_rewrite`).
 */
import {
  M_CAPACITY, M_HOOK, M_ID, M_INDEV, M_LENGTH, M_MARK, M_NEW_LENGTH, M_OFFSET, M_ORIG_LENGTH, M_OUTDEV, M_OUT_FLAGS,
  M_SKB_FLAGS, M_VERDICT, M_VMARK, META_STRIDE, OUT_REWRITTEN, OUT_SET_MARK, SKB_CSUM_NOTREADY, V_ACCEPT, V_DROP,
  V_HOLD, type Batch,
} from '../io/batch-layout';
import type { Interfaces } from '../io/interfaces';
import { Classified, classify } from '../packet/classify';
import { L4ChecksumCompleter } from '../packet/complete-checksum';
import { Counters } from './counters';
import { registerEngineCounters, type EngineCounterIds } from './engine-counters';
import { HeldPackets, type HeldPacket } from './held';
import { HeldVerdicts } from './held-verdicts';
import { sourceEntry, type SourceEntry, type SourceOptions, type VerdictSink } from './sources';
import { StageBooks } from './stage-books';
import { Decision, Verdict, type PacketContext, type Stage, type StageServices } from './stage';

export interface PacketInjector {
  ip(ifindex: number, packet: Uint8Array): boolean;
  l2(ifindex: number, dstMac: Uint8Array, packet: Uint8Array): boolean;
}

export interface EngineOptions {
  /** defaultVerdict: timeout/shutdown verdict for packets held by fail-open stages (fail-closed ones always drop). */
  held: { max: number; timeoutMs: number; defaultVerdict: 'accept' | 'drop' };
  interfaces: Interfaces;
  injector?: PacketInjector;
  /** Period of stage tick() calls. */
  tickMs?: number;
  log?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

/**
 * Someone is tracing (src/engine/trace.ts). before() sees the batch as it arrived and returns the
 * stages to run it through (its own wrappers); after() sees the verdicts. Must not throw.
 */
export interface BatchTracer {
  before(queue: number, batch: Batch, stages: readonly Stage[]): readonly Stage[];
  after(batch: Batch): void;
}

export class Engine {
  readonly counters = new Counters();
  readonly held: HeldPackets;
  readonly services: StageServices;
  private stages: Stage[] = [];
  /** The stages decide() runs: `stages`, or a tracer's wrappers of them during a traced batch. */
  private loopStages: readonly Stage[] = [];
  /** Set while someone traces; when null it costs one check per batch (bench/RESULTS.md). */
  tracer: BatchTracer | null = null;
  /** Per-stage decision counts, error counters and tick schedule (stage-books.ts); the loop uses its arrays directly. */
  private readonly books: StageBooks;
  private stageDecisions = new Float64Array(0);
  private stageErrorIds = new Int32Array(0);
  /** Handle of a hold taken by the stage now in process() (-1: none), undone if the stage throws. */
  private holdInCall = -1;
  /** The packet's length on the wire (> ctx.length when the source truncated it). */
  private curWireLength = 0;
  private readonly sources: SourceEntry[] = [];
  private readonly info = new Classified();
  private readonly ctx: PacketContext;
  private readonly d = new Decision();
  private nowMs = Date.now();
  private busy = false;
  /** Releases, timeouts, orphans and shutdown of held packets (held-verdicts.ts). */
  private readonly heldVerdicts: HeldVerdicts;
  /** The packet process() is looking at, for hold(): source index and meta base, or the held packet. */
  private curSource = -1;
  private curBase = 0;
  private curHeld: HeldPacket | null = null;
  private curStage = 0;
  private curOrigMark = 0;
  /** The meta array of the batch being processed, for hold() to read the packet id. */
  private currentMeta: Uint32Array | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly c: EngineCounterIds;
  private readonly invalidIds: number[];

  constructor(private readonly opts: EngineOptions) {
    this.held = new HeldPackets(opts.held.max, opts.held.timeoutMs);
    this.ctx = {
      bytes: new Uint8Array(0), offset: 0, length: 0, capacity: 0, mark: 0, indev: 0, outdev: 0,
      hook: 0, queue: 0, info: this.info,
    };
    ({ c: this.c, invalidIds: this.invalidIds } = registerEngineCounters(this.counters));
    this.services = this.makeServices();
    const c = this.c;
    this.books = new StageBooks(this.counters, { ids: { stageErrors: c.stageErrors, tickErrors: c.tickErrors }, tickMs: opts.tickMs, log: opts.log });
    this.heldVerdicts = new HeldVerdicts(this.held, this.counters, this.sources, {
      defaultVerdict: opts.held.defaultVerdict, log: opts.log,
      ids: { released: c.released, heldExpired: c.heldExpired, heldOrphaned: c.heldOrphaned, tickErrors: c.tickErrors },
      count: (verdict) => this.count(verdict),
      rerun: (p) => this.rerun(p),
    });
  }

  /** Adds a packet source; the returned index is what handleBatch() takes. */
  addSource(sink: VerdictSink, queue: number, o: SourceOptions): number {
    this.sources.push(sourceEntry(sink, queue, o));
    this.ensureTimer();
    return this.sources.length - 1;
  }

  /** Stages with batchStart/batchEnd (the NAT journal), called around every batch. */
  private batchStages: Stage[] = [];

  /**
   * Replaces the pipeline. Call between batches (any time outside handleBatch, in Node's one thread).
   * A held packet whose stage is still in the pipeline resumes there; one whose stage is gone gets
   * that stage's timeout verdict now.
   */
  setPipeline(stages: Stage[]): void {
    for (const s of stages) s.init?.(this.services);
    this.stages = stages;
    this.loopStages = stages;
    this.batchStages = stages.filter((s) => s.batchStart !== undefined && s.batchEnd !== undefined);
    this.books.setPipeline(stages);
    this.stageDecisions = this.books.decisions;
    this.stageErrorIds = this.books.errorIds;
    this.heldVerdicts.setPipeline(stages);
    this.ensureTimer();
  }

  get pipeline(): readonly Stage[] {
    return this.stages;
  }

  handleBatch(source: number, batch: Batch): void {
    const bs = this.batchStages;
    for (let i = 0; i < bs.length; i++) bs[i]!.batchStart!();
    try {
      const tr = this.tracer;
      if (tr === null) { this.runBatch(source, batch); return; }
      this.loopStages = tr.before(this.sources[source]!.queue, batch, this.stages);
      try { this.runBatch(source, batch); } finally { this.loopStages = this.stages; tr.after(batch); }
    } finally {
      for (let i = 0; i < bs.length; i++) bs[i]!.batchEnd!();
    }
  }

  private runBatch(source: number, batch: Batch): void {
    const src = this.sources[source]!;
    const { slab, meta, count } = batch;
    const ctx = this.ctx;
    const d = this.d;
    this.nowMs = Date.now();
    this.opts.interfaces.maybeRefresh(this.nowMs);
    this.busy = true;
    this.curSource = source;
    this.curHeld = null;
    this.currentMeta = meta;
    ctx.bytes = slab;
    ctx.queue = src.queue;
    for (let i = 0; i < count; i++) {
      const base = i * META_STRIDE;
      ctx.offset = meta[base + M_OFFSET]!;
      ctx.length = meta[base + M_LENGTH]!;
      ctx.capacity = meta[base + M_CAPACITY]!;
      ctx.mark = meta[base + M_MARK]!;
      ctx.indev = meta[base + M_INDEV]!;
      ctx.outdev = meta[base + M_OUTDEV]!;
      ctx.hook = meta[base + M_HOOK]! | 0;
      const wire = meta[base + M_ORIG_LENGTH]!;
      this.curWireLength = wire > ctx.length ? wire : ctx.length;
      this.curBase = base;
      this.curOrigMark = ctx.mark;
      const verdict = this.decide(src, 0);
      meta[base + M_VERDICT] = verdict;
      let flags = 0;
      if (verdict !== V_HOLD) {
        if (d.markMask !== 0) {
          meta[base + M_VMARK] = ctx.mark;
          flags |= OUT_SET_MARK;
        }
        if (d.rewritten) {
          if (meta[base + M_SKB_FLAGS]! & SKB_CSUM_NOTREADY) this.checksums.complete(this.info, ctx.bytes);
          meta[base + M_NEW_LENGTH] = ctx.length;
          flags |= OUT_REWRITTEN;
        }
      }
      meta[base + M_OUT_FLAGS] = flags;
    }
    this.counters.add(this.c.packets, count);
    this.counters.add(this.c.batches);
    this.currentMeta = null;
    this.busy = false;
    this.runPendingReleases();
    this.maybeTick();
  }

  /** Classifies ctx, runs the stages from `from`, counts, and returns the kernel verdict code. */
  private decide(src: SourceEntry, from: number): number {
    const ctx = this.ctx;
    const d = this.d;
    d.reset();
    classify(this.info, ctx.bytes, ctx.offset, ctx.length, this.curWireLength);
    if (this.info.reason !== 0) {
      const id = this.invalidIds[this.info.reason] ?? 0;
      this.counters.add(id);
      if (src.onInvalid === V_DROP) this.counters.addDrop(id);
      return this.count(src.onInvalid);
    }
    const stages = this.loopStages;
    for (let s = from; s < stages.length; s++) {
      const stage = stages[s]!;
      this.curStage = s;
      // What a fail-open stage that throws must leave as it found it.
      const markValue = d.markValue, markMask = d.markMask, rewritten = d.rewritten, mark = ctx.mark, length = ctx.length;
      this.holdInCall = -1;
      try {
        stage.process(ctx, d);
      } catch (err) {
        this.books.failed(s, err, ctx.bytes, ctx.offset, ctx.length);
        if (this.holdInCall >= 0) this.held.take(this.holdInCall);
        if (stage.failure === 'open') {
          d.verdict = Verdict.CONTINUE;
          d.reason = 0;
          d.markValue = markValue;
          d.markMask = markMask;
          d.rewritten = rewritten;
          ctx.mark = mark;
          ctx.length = length;
          continue;
        }
        d.reset();
        d.drop(this.stageErrorIds[s]!);
      }
      if (d.markMask !== 0) ctx.mark = ((this.curOrigMark & ~d.markMask) ^ d.markValue) >>> 0;
      if (d.verdict !== Verdict.CONTINUE) {
        this.stageDecisions[s * 5 + d.verdict]!++;
        break;
      }
    }
    if (d.rewritten && this.info.truncated && d.verdict !== Verdict.DROP && d.verdict !== Verdict.HOLD && d.verdict !== Verdict.ANSWERED) {
      d.drop(this.c.truncatedRewrite);
    }
    if (d.markMask !== 0) this.counters.add(this.c.marked);
    if (d.rewritten) this.counters.add(this.c.rewritten);
    switch (d.verdict) {
      case Verdict.ACCEPT: return this.count(V_ACCEPT);
      case Verdict.DROP:
        this.counters.add(d.reason);
        this.counters.addDrop(d.reason);
        return this.count(V_DROP);
      case Verdict.ANSWERED:
        this.counters.add(this.c.answered);
        this.counters.add(this.c.dropped);
        return V_DROP;
      case Verdict.HOLD:
        this.counters.add(this.c.held);
        return V_HOLD;
      default: return this.count(src.defaultVerdict);
    }
  }

  /** A rewritten CHECKSUM_PARTIAL packet gets its TCP/UDP checksum computed in full (complete-checksum.ts). */
  private readonly checksums = new L4ChecksumCompleter();

  private count(verdict: number): number {
    this.counters.add(verdict === V_ACCEPT ? this.c.accepted : this.c.dropped);
    return verdict;
  }

  private makeServices(): StageServices {
    return {
      reason: (name, help) => this.counters.register(name, help, true),
      count: (id, n = 1) => this.counters.add(id, n),
      hold: (timeoutMs) => this.hold(timeoutMs),
      release: (handle) => this.queueRelease(handle, -1),
      releaseWith: (handle, verdict) => this.queueRelease(handle, verdict === Verdict.ACCEPT ? V_ACCEPT : V_DROP),
      inject: (ifindex, packet) => this.inject(this.opts.injector?.ip(ifindex, packet) ?? false),
      injectL2: (ifindex, mac, packet) => this.inject(this.opts.injector?.l2(ifindex, mac, packet) ?? false),
      now: () => this.nowMs,
      heldHandle: () => this.curHeld?.handle ?? -1,
      interfaces: this.opts.interfaces,
    };
  }

  private inject(ok: boolean): boolean {
    this.counters.add(ok ? this.c.injected : this.c.injectFailed);
    return ok;
  }

  private hold(timeoutMs: number | undefined): number {
    const ctx = this.ctx;
    const d = this.d;
    const held = this.curHeld;
    const batchMeta = this.currentMeta;
    const skbFlags = held ? held.skbFlags : batchMeta ? batchMeta[this.curBase + M_SKB_FLAGS]! : 0;
    const meta = { source: this.curSource, stage: this.curStage, owner: this.stages[this.curStage] ?? null, mark: ctx.mark,
      indev: ctx.indev, outdev: ctx.outdev, hook: ctx.hook, queue: ctx.queue, rewritten: d.rewritten, skbFlags,
      wireLength: this.curWireLength };
    let handle: number;
    if (held) {
      handle = this.held.add({ ...meta, id: held.id, originalMark: held.originalMark }, ctx.bytes, ctx.offset, ctx.length, this.nowMs, timeoutMs);
    } else {
      handle = batchMeta === null ? -1 : this.held.add({ ...meta, id: batchMeta[this.curBase + M_ID]!, originalMark: this.curOrigMark },
        ctx.bytes, ctx.offset, ctx.length, this.nowMs, timeoutMs);
    }
    if (handle < 0) this.counters.add(this.c.heldCap);
    else { this.holdInCall = handle; this.ensureTimer(); }
    return handle;
  }

  private queueRelease(handle: number, verdict: number): void {
    this.heldVerdicts.queue(handle, verdict);
    if (!this.busy) this.runPendingReleases();
  }

  private runPendingReleases(): void {
    if (!this.busy) this.heldVerdicts.runPending();
  }

  /** Runs a held packet through the pipeline from its holding stage on and sends the verdict. */
  private rerun(p: HeldPacket): void {
    const src = this.sources[p.source];
    if (!src) return;
    const ctx = this.ctx;
    this.nowMs = Date.now();
    this.busy = true;
    this.curSource = p.source;
    this.curHeld = p;
    ctx.bytes = p.bytes;
    ctx.offset = 0;
    ctx.length = p.length;
    ctx.capacity = p.bytes.length;
    ctx.mark = p.mark;
    ctx.indev = p.indev;
    ctx.outdev = p.outdev;
    ctx.hook = p.hook;
    ctx.queue = p.queue;
    this.curOrigMark = p.mark;
    this.curWireLength = p.wireLength;
    const verdict = this.decide(src, p.stage);
    this.busy = false;
    this.curHeld = null;
    if (verdict === V_HOLD) return;
    if (this.d.rewritten && (p.skbFlags & SKB_CSUM_NOTREADY)) this.checksums.complete(this.info, ctx.bytes);
    p.length = ctx.length;
    p.mark = ctx.mark;
    p.rewritten = p.rewritten || this.d.rewritten;
    this.heldVerdicts.finish(p, verdict, true);
  }

  private maybeTick(): void {
    const now = Date.now();
    this.heldVerdicts.expire(now);
    this.books.tick(now);
  }

  private ensureTimer(): void {
    if (this.timer) return;
    // Timeouts must fire even when no packet arrives; the queues keep the process alive, not this.
    this.timer = setInterval(() => { if (!this.busy) { this.runPendingReleases(); this.maybeTick(); } }, 20);
    this.timer.unref();
  }

  /** Per-stage decision counts for stats: [continue, accept, drop, hold, answered]. */
  stageCounts(): Record<string, Record<string, number>> {
    return this.books.counts();
  }

  /** Decides everything still held (its stage's timeout verdict) and stops timers. Sources are closed by the caller. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.heldVerdicts.drain();
    for (const s of this.stages) await s.close?.();
  }
}
