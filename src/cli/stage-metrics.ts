/**
 * The parts of a metrics scrape read out of stage stats() objects: rule hits (steer's
 * `{ rules: { name: hits } }`, policy's `{ policies: { name: { hits } } }`) and the stage levels
 * (sluice_stage_state{stage, name}). One reader for the single-thread runtime and for the summed
 * stats of workers: N, so both export the same series.
 */
import type { MetricsSnapshot } from '../obs/metrics';

/** Stage stats() fields that are levels, exported as sluice_stage_state{stage, name}. */
const STAGE_LEVELS = ['sas', 'hosts', 'held', 'turns', 'table_bytes', 'rate_limited_clients'] as const;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Rule hits and levels of every (stage name, stats()) pair. */
export function stageMetrics(stages: Iterable<[string, unknown]>): Pick<MetricsSnapshot, 'ruleHits' | 'levels'> {
  const ruleHits: MetricsSnapshot['ruleHits'] = [];
  const levels: MetricsSnapshot['levels'] = [];
  for (const [stage, state] of stages) {
    const st = isRecord(state) ? state : {};
    if (isRecord(st.rules)) for (const [rule, v] of Object.entries(st.rules)) if (typeof v === 'number') ruleHits.push({ stage, rule, value: v });
    if (isRecord(st.policies)) {
      for (const [rule, v] of Object.entries(st.policies)) if (isRecord(v) && typeof v.hits === 'number') ruleHits.push({ stage, rule, value: v.hits });
    }
    for (const name of STAGE_LEVELS) if (typeof st[name] === 'number') levels.push({ stage, name, value: st[name] as number });
  }
  return { ruleHits, levels };
}

/** The numeric fields of a queue's or TUN's stats. */
export function numericFields(o: object): Record<string, number> {
  return Object.fromEntries(Object.entries(o).filter((e): e is [string, number] => typeof e[1] === 'number'));
}
