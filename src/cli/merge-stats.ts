/**
 * `sluice stats` and metrics with workers: N: one view summed over the worker threads plus the NAT
 * owner (main thread). Counters add up by name. The owner's engine.* counters are left out: its
 * packets are forwarded ones, already counted by the worker that received them. Stage stats add up
 * leaf by leaf (numbers), except the NAT's, which is the owner's (tables, learning, journal) with the
 * workers' fast-path counts under `workers`.
 */
import type { WorkerStats } from './worker-thread';

type Counter = { name: string; help: string; drop: boolean; value: number };

export function sumCounters(lists: Counter[][]): Counter[] {
  const out = new Map<string, Counter>();
  for (const list of lists) {
    for (const c of list) {
      const o = out.get(c.name);
      if (o) o.value += c.value; else out.set(c.name, { ...c });
    }
  }
  return [...out.values()];
}

export function sumDrops(lists: { name: string; value: number }[][]): { name: string; value: number }[] {
  const out = new Map<string, number>();
  for (const list of lists) for (const d of list) out.set(d.name, (out.get(d.name) ?? 0) + d.value);
  return [...out].map(([name, value]) => ({ name, value }));
}

/** Adds numbers leaf by leaf; other values: the first one seen. */
export function sumDeep(a: unknown, b: unknown): unknown {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = k in out ? sumDeep(out[k], v) : v;
    return out;
  }
  return a === undefined ? b : a;
}

const notEngine = (c: { name: string }): boolean => !c.name.startsWith('engine.');

export interface MergedStats {
  queues: Record<string, unknown>[];
  held: number;
  stages: Record<string, { decisions: Record<string, number>; state?: Record<string, unknown> }>;
  counters: Counter[];
  drops: { name: string; value: number }[];
  decisions: Record<string, Record<string, number>>;
}

/**
 * owner: the main thread's engine (the NAT stage's state and counters). Worker NAT counters named
 * nat.owner_dropped stand for drops the owner counted under their own reason: left out of the drop
 * reasons (they would count twice) but kept as a counter.
 */
export function mergeStats(owner: { counters: Counter[]; drops: { name: string; value: number }[]; natState?: Record<string, unknown>; held: number },
  workers: WorkerStats[]): MergedStats {
  const stages: MergedStats['stages'] = {};
  for (const w of workers) {
    for (const [name, s] of Object.entries(w.stages)) {
      const o = stages[name];
      stages[name] = o ? { decisions: sumDeep(o.decisions, s.decisions) as Record<string, number>, state: sumDeep(o.state, s.state) as Record<string, unknown> }
        : { decisions: { ...s.decisions }, state: s.state };
    }
  }
  if (stages.nat && owner.natState) stages.nat = { decisions: stages.nat.decisions, state: { ...owner.natState, workers: stages.nat.state?.worker } };
  const decisions: MergedStats['decisions'] = {};
  for (const [name, s] of Object.entries(stages)) decisions[name] = s.decisions;
  return {
    queues: workers.flatMap((w) => w.queues.map((q) => ({ worker: w.index, ...q }))),
    held: owner.held + workers.reduce((n, w) => n + w.held, 0),
    stages,
    counters: sumCounters([owner.counters.filter(notEngine), ...workers.map((w) => w.counters)]),
    drops: sumDrops([owner.drops.filter(notEngine), ...workers.map((w) => w.drops.filter((d) => d.name !== 'nat.owner_dropped'))]),
    decisions,
  };
}
