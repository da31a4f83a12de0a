/**
 * The steer stage: one first-match lookup per packet, then the rule's action (mark under a mask,
 * accept, drop with the rule's reason, or continue to the next stage). Per-rule hit counts are kept
 * in a Float64Array and shown by `sluice stats`.
 */
import type { Decision, PacketContext, Stage, StageServices } from '../engine/stage';
import { Verdict } from '../engine/stage';
import { ActionType, compileSteer, compileSteerSteps, type CompiledSteer } from './compile';
import { runStepsSliced } from '../select/steps';
import type { SteerConfig } from './config';
import { Matcher, type MatcherImage } from '../select/match';

/** What the stage runs on: the compiled section without its selectors (those are in the classifier). */
export type SteerTables = Omit<CompiledSteer, 'sels' | 'matchSels' | 'rows'>;

/**
 * A compiled steer section other threads can run (workers: N): its tables and the classifier's
 * read-only image over SharedArrayBuffers (src/select/shared.ts). Compiled once by the main thread.
 */
export interface SteerImage { compiled: SteerTables; matcher: MatcherImage }

export class SteerStage implements Stage {
  readonly name = 'steer';
  /** Steering fails open: an unsteered packet takes the main routing table. */
  readonly failure = 'open';
  readonly compiled: SteerTables;
  private readonly matcher: Matcher;
  private readonly type: Uint8Array;
  // int32 (not uint32): values passed to setMark() stay small integers, never boxed.
  private readonly markValue: Int32Array;
  private readonly markMask: Int32Array;
  private readonly reasons: Int32Array;
  private readonly rowRule: Int32Array;
  private readonly hits: Float64Array;
  private defaultHits = 0;
  private defaultReason = 0;
  private readonly defaultType: ActionType;

  constructor(cfg: SteerConfig, built?: { compiled: SteerTables; matcher: Matcher }) {
    const full = built ? null : compileSteer(cfg);
    const c = this.compiled = built?.compiled ?? full!;
    // Rows: one per plain rule, one per map element (src/steer/compile.ts); hits count per rule.
    this.matcher = built?.matcher ?? new Matcher(full!.matchSels, full!.rows);
    this.type = Uint8Array.from(c.rowActions.map((a) => a.type));
    this.markValue = Int32Array.from(c.rowActions.map((a) => a.markValue | 0));
    this.markMask = Int32Array.from(c.rowActions.map((a) => a.markMask | 0));
    this.rowRule = Int32Array.from(c.rowRule);
    this.reasons = new Int32Array(c.rowActions.length);
    this.hits = new Float64Array(c.names.length);
    this.defaultType = c.defaultType;
  }

  /**
   * The same stage, compiled in slices of a few milliseconds with the event loop turning between
   * them: a reload of 10,000 rules does not hold up the packet loop (bench/RESULTS.md).
   */
  static async sliced(cfg: SteerConfig): Promise<SteerStage> {
    const compiled = await runStepsSliced(compileSteerSteps(cfg));
    const matcher = await Matcher.sliced(compiled.matchSels, compiled.rows);
    return new SteerStage(cfg, { compiled, matcher });
  }

  /** This stage's compiled section as an image for worker threads (the classifier's arrays shared, not copied). */
  image(): SteerImage {
    const { names, actions, routes, defaultType, rowActions, rowRule } = this.compiled;
    return { compiled: { names, actions, routes, defaultType, rowActions, rowRule }, matcher: this.matcher.image() };
  }

  /** A stage over an image made by another thread: nothing compiled here. */
  static fromImage(cfg: SteerConfig, im: SteerImage): SteerStage {
    return new SteerStage(cfg, { compiled: im.compiled, matcher: Matcher.fromImage(im.matcher) });
  }

  init(services: StageServices): void {
    this.matcher.bind(services.interfaces);
    const byRule = new Map<number, number>();
    this.compiled.rowActions.forEach((a, r) => {
      if (a.type !== ActionType.DROP) return;
      const rule = this.compiled.rowRule[r]!;
      let id = byRule.get(rule);
      if (id === undefined) { id = services.reason(`steer.${this.compiled.names[rule]}`, a.dropHelp); byRule.set(rule, id); }
      this.reasons[r] = id;
    });
    if (this.defaultType === ActionType.DROP) this.defaultReason = services.reason('steer.default', 'matched no steer rule (steer.default: drop)');
  }

  process(pkt: PacketContext, d: Decision): void {
    const r = this.matcher.first(pkt);
    if (r < 0) {
      this.defaultHits++;
      if (this.defaultType === ActionType.ACCEPT) d.verdict = Verdict.ACCEPT;
      else if (this.defaultType === ActionType.DROP) d.drop(this.defaultReason);
      return;
    }
    this.hits[this.rowRule[r]!]!++;
    const mask = this.markMask[r]!;
    if (mask !== 0) {
      d.setMark(this.markValue[r]!, mask); // the engine updates pkt.mark for later stages
    }
    const t = this.type[r]!;
    if (t === ActionType.ACCEPT) d.verdict = Verdict.ACCEPT;
    else if (t === ActionType.DROP) d.drop(this.reasons[r]!);
  }

  /** For `sluice trace`: the first rule the packet matches (what process() will apply). */
  explain(pkt: PacketContext): Record<string, unknown> {
    const r = this.matcher.first(pkt);
    if (r < 0) return { rule: '(none)', default: ['continue', 'accept', 'drop'][this.defaultType] ?? this.defaultType };
    return { rule: this.compiled.names[this.rowRule[r]!] };
  }

  stats(): Record<string, unknown> {
    const rules: Record<string, number> = {};
    this.compiled.names.forEach((n, i) => { rules[n] = this.hits[i]!; });
    return { rules, no_match: this.defaultHits };
  }
}
