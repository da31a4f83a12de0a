/**
 * The engine's per-stage books for the running pipeline: decision counts (stats), the stage's
 * error counter and log rate limit (a stage that throws), and its tick schedule (housekeeping).
 * Rebuilt by setPipeline(); the engine's packet loop writes `decisions` and reads `errorIds`
 * directly (no call per packet).
 */
import { describePacket } from '../packet/describe';
import type { Counters } from './counters';
import type { Stage } from './stage';

/** Decision kinds in the order of Verdict (stage.ts): `decisions[stage * 5 + verdict]`. */
const DECISIONS = ['continue', 'accept', 'drop', 'hold', 'answered'];

export interface StageBooksOptions {
  /** Counter ids: every stage throw, and every housekeeping throw (registered by the engine). */
  ids: { stageErrors: number; tickErrors: number };
  /** Tick period of stages that set no tickMs. */
  tickMs?: number;
  log?: { error(obj: object, msg: string): void };
}

export class StageBooks {
  private stages: readonly Stage[] = [];
  /** Per stage and verdict: packets it decided. */
  decisions = new Float64Array(0);
  /** Per stage: counter id of engine.stage_error.<name> (also the drop reason of a fail-closed throw). */
  errorIds = new Int32Array(0);
  private errorLog: { at: number; suppressed: number }[] = [];
  private tickPeriods: number[] = [];
  private lastTicks: number[] = [];

  constructor(private readonly counters: Counters, private readonly o: StageBooksOptions) {}

  setPipeline(stages: readonly Stage[]): void {
    this.stages = stages;
    this.tickPeriods = stages.map((st) => st.tickMs ?? this.o.tickMs ?? 1000);
    this.lastTicks = stages.map(() => 0);
    this.decisions = new Float64Array(stages.length * 5);
    this.errorIds = Int32Array.from(stages, (s) => this.counters.register(`engine.stage_error.${s.name}`,
      `packets on which stage ${s.name} threw (fail-${s.failure}${s.failure === 'closed' ? ': dropped' : ': passed on'})`, s.failure === 'closed'));
    this.errorLog = stages.map(() => ({ at: -Infinity, suppressed: 0 }));
  }

  /** Stage s threw on the packet in bytes: counted per stage, logged at most once a second per stage with the packet's summary. */
  failed(s: number, err: unknown, bytes: Uint8Array, offset: number, length: number): void {
    this.counters.add(this.o.ids.stageErrors);
    const stage = this.stages[s]!;
    if (stage.failure === 'open') this.counters.add(this.errorIds[s]!);
    const lim = this.errorLog[s]!;
    const now = Date.now();
    if (now - lim.at < 1000) { lim.suppressed++; return; }
    let packet: unknown;
    try { packet = describePacket(bytes, offset, length); } catch (e) { packet = { undecodable: String(e) }; }
    this.o.log?.error({ err, stage: stage.name, failure: stage.failure, suppressed: lim.suppressed, packet },
      stage.failure === 'closed' ? 'stage threw: packet dropped (fails closed)' : 'stage threw: packet passed on (fails open)');
    lim.at = now;
    lim.suppressed = 0;
  }

  /** Calls each stage's tick() whose period has passed. */
  tick(now: number): void {
    for (let i = 0; i < this.stages.length; i++) {
      if (now - this.lastTicks[i]! < this.tickPeriods[i]!) continue;
      this.lastTicks[i] = now;
      // Housekeeping must not take the packet path down: a throw is counted, logged, and the
      // other stages still get their tick (this runs inside the addon's batch callback).
      try {
        this.stages[i]!.tick?.(now);
      } catch (err) {
        this.counters.add(this.o.ids.tickErrors);
        this.o.log?.error({ err, stage: this.stages[i]!.name }, 'stage tick threw; packets keep flowing');
      }
    }
  }

  /** Per-stage decision counts for stats: [continue, accept, drop, hold, answered]. */
  counts(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    this.stages.forEach((s, i) => {
      const row: Record<string, number> = {};
      DECISIONS.forEach((n, v) => { row[n] = this.decisions[i * 5 + v]!; });
      out[s.name] = row;
    });
    return out;
  }
}
