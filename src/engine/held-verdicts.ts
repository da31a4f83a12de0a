/**
 * How a held packet gets its verdict (the engine holds it, engine.ts hold()): its stage releases it
 * (with a verdict, or to re-run the pipeline from that stage on), its timeout passes, a reload
 * removes its stage, or the engine closes. Each path takes the packet out of HeldPackets first, so
 * exactly one verdict goes back through its source.
 * Releases a stage asks for while the engine decides a packet are queued and run once it is done
 * (the engine's packet context and decision are shared): the engine calls runPending() when not busy.
 */
import { V_ACCEPT, V_DROP } from '../io/batch-layout';
import type { Counters } from './counters';
import type { HeldPacket, HeldPackets } from './held';
import type { VerdictSink } from './sources';
import type { Stage } from './stage';

/** What HeldVerdicts needs of a packet source. */
export interface HeldSource { sink: VerdictSink; needsPayload: boolean }

export interface HeldVerdictsOptions {
  /** Timeout/shutdown verdict for packets of fail-open stages (fail-closed ones always drop). */
  defaultVerdict: 'accept' | 'drop';
  /** Counter ids (registered by the engine, which owns their order). */
  ids: { released: number; heldExpired: number; heldOrphaned: number; tickErrors: number };
  /** Counts a verdict as accepted or dropped (the engine's totals). */
  count(verdict: number): void;
  /** Runs a released packet through the pipeline from its holding stage on (engine.ts); ends with finish(). */
  rerun(p: HeldPacket): void;
  log?: { error(obj: object, msg: string): void };
}

export class HeldVerdicts {
  private readonly pending: { handle: number; verdict: number }[] = [];
  private stages: readonly Stage[] = [];

  constructor(private readonly held: HeldPackets, private readonly counters: Counters,
    private readonly sources: readonly HeldSource[], private readonly o: HeldVerdictsOptions) {}

  /** verdict < 0: re-run the pipeline from the holding stage; else that kernel verdict. */
  queue(handle: number, verdict: number): void {
    this.pending.push({ handle, verdict });
  }

  runPending(): void {
    while (this.pending.length > 0) {
      const { handle, verdict } = this.pending.shift()!;
      const p = this.held.take(handle);
      if (!p) continue; // already expired or released
      this.counters.add(this.o.ids.released);
      if (verdict >= 0) this.finish(p, verdict, false);
      else this.o.rerun(p);
    }
  }

  /**
   * A new pipeline: a held packet whose stage is still in it resumes there; one whose stage is gone
   * gets that stage's timeout verdict now.
   */
  setPipeline(stages: readonly Stage[]): void {
    this.stages = stages;
    const orphans: HeldPacket[] = [];
    for (const p of this.held.all()) {
      const at = p.owner ? stages.indexOf(p.owner) : -1;
      if (at >= 0) p.stage = at; else orphans.push(p);
    }
    for (const p of orphans) {
      this.held.take(p.handle);
      this.counters.add(this.o.ids.heldOrphaned);
      const verdict = this.timeoutVerdict(p);
      if (verdict === V_DROP) this.counters.addDrop(this.o.ids.heldOrphaned);
      this.finish(p, verdict, false);
    }
  }

  /** What a held packet gets when its hold ends without a release: its stage's timeout verdict. */
  timeoutVerdict(p: HeldPacket): number {
    return p.owner?.failure === 'closed' ? V_DROP : this.o.defaultVerdict === 'accept' ? V_ACCEPT : V_DROP;
  }

  /** Sends the verdict (counted: the engine already counted it, a re-run's decide() does). */
  finish(p: HeldPacket, verdict: number, counted: boolean): void {
    if (!counted) this.o.count(verdict);
    const mark = p.mark !== p.originalMark ? p.mark : -1;
    const src = this.sources[p.source];
    if (!src) return;
    src.sink.release(p.id, verdict, mark, p.rewritten || src.needsPayload ? p.bytes.subarray(0, p.length) : null);
  }

  expire(now: number): void {
    const expired = this.held.expired(now);
    if (expired.length === 0) return;
    for (const p of expired) {
      this.counters.add(this.o.ids.heldExpired);
      const verdict = this.timeoutVerdict(p);
      if (verdict === V_DROP) this.counters.addDrop(this.o.ids.heldExpired);
      this.finish(p, verdict, false);
      try {
        this.stages[p.stage]?.onHoldExpired?.(p.handle);
      } catch (err) {
        this.counters.add(this.o.ids.tickErrors);
        this.o.log?.error({ err, stage: this.stages[p.stage]?.name }, 'stage onHoldExpired threw');
      }
    }
  }

  /** Shutdown: everything still held gets its stage's timeout verdict. */
  drain(): void {
    for (const p of this.held.drain()) this.finish(p, this.timeoutVerdict(p), false);
  }
}
