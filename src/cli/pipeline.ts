/**
 * From config to running parts: which stages run (in the order policy → steer → nat → dhcp), the
 * kernel rules the whole config needs, and the warnings `sluice check` prints. Each area contributes
 * through its own module; this file only wires them.
 */
import type { Config } from '../config/schema';
import type { CaptureConfig } from '../config/core';
import type { Stage } from '../engine/stage';
import { emptyRuleSet, mergeRuleSets, type RuleSet } from '../rules';
import { createNatStage, natRules } from '../nat';
import { createSteerStage, createSteerStageSliced, steerCheck, steerRules, SteerStage, type SteerImage } from '../steer';
import { createPolicyStage, policyCheck, policyRules, PolicyStage, type PolicyImage } from '../policy';
import { createDhcpStage, dhcpRules } from '../dhcp';

export interface StageOptions {
  log: { info(o: object, m: string): void; warn(o: object, m: string): void; error?(o: object, m: string): void };
  /** Directory for state that survives restarts and reboots (state_dir: the NAT journal). */
  stateDir: string;
  /** workers: N > 1: the NAT stage keeps its SA table in shared memory for the worker threads. */
  sharedNat?: boolean;
  /** workers: N > 1, in a worker: sections the main thread compiled once (read-only images); built from these, not compiled again. */
  images?: CompiledImages;
}

interface Area {
  key: string;
  build(cfg: Config, opts: StageOptions): Stage | null;
  /** The same, compiled in slices with the event loop turning (reload); defaults to build(). */
  buildSliced?(cfg: Config, opts: StageOptions): Promise<Stage | null>;
  rules(cfg: Config): RuleSet;
  check(cfg: Config): string[];
}

/** The stage areas in pipeline order. */
export const AREAS: Area[] = [
  {
    key: 'policy',
    build: (cfg, opts) => (cfg.policy ? (opts.images?.policy ? new PolicyStage(cfg.policy, { log: opts.log }, opts.images.policy) : createPolicyStage(cfg.policy, { log: opts.log })) : null),
    rules: (cfg) => policyRules(cfg.policy!),
    check: (cfg) => policyCheck(cfg.policy!),
  },
  {
    key: 'steer',
    build: (cfg, opts) => (cfg.steer && cfg.steer.enabled ? (opts.images?.steer ? SteerStage.fromImage(cfg.steer, opts.images.steer) : createSteerStage(cfg.steer)) : null),
    buildSliced: async (cfg, opts) => (cfg.steer && cfg.steer.enabled ? (opts.images?.steer ? SteerStage.fromImage(cfg.steer, opts.images.steer) : createSteerStageSliced(cfg.steer)) : null),
    rules: (cfg) => steerRules(cfg.steer!),
    check: (cfg) => steerCheck(cfg.steer!),
  },
  {
    key: 'nat',
    build: (cfg, opts) => (cfg.nat && cfg.nat.enabled ? createNatStage(cfg.nat, { stateDir: opts.stateDir, log: opts.log, shared: opts.sharedNat }) : null),
    rules: (cfg) => natRules(cfg.nat!),
    check: (cfg) => {
      const nat = cfg.nat!;
      const q = cfg.queues.find((x) => x.num === nat.queue);
      if (!q) return [`nat.queue ${nat.queue} is not in queues: no packet would reach the NAT stage`];
      return q.fail_open ? [`queue ${q.num} carries the NAT and has fail_open: true: while sluice is down, ESP would leave with LAN source addresses`] : [];
    },
  },
  {
    key: 'dhcp',
    build: (cfg) => createDhcpStage(cfg.dhcp!),
    rules: (cfg) => dhcpRules(cfg.dhcp!),
    check: (cfg) => {
      const d = cfg.dhcp!;
      const parts = [['inform', d.inform], ['relay', d.relay]] as const;
      return parts.filter(([, p]) => p && p.enabled && !cfg.queues.some((q) => q.num === p.queue))
        .map(([name, p]) => `dhcp.${name}.queue ${p!.queue} is not in queues: the ${name} part would see no packet`);
    },
  },
];

/**
 * Sections compiled once by the main thread for every worker (workers: N > 1): the steer and policy
 * classifiers. DHCP is still built by each worker (option tables, no classifier; small).
 */
export interface CompiledImages { steer?: SteerImage; policy?: PolicyImage }

/**
 * The images workers build their stages from. `previous`: the images of the running config; a
 * section that did not change keeps its image (the workers keep their stage), a changed one is
 * compiled in slices (reload: the main thread's packet loop keeps turning).
 */
export async function compileImages(cfg: Config, previous?: { cfg: Config; images: CompiledImages }): Promise<CompiledImages> {
  const out: CompiledImages = {};
  if (cfg.steer && cfg.steer.enabled) {
    const same = previous?.images.steer && JSON.stringify(previous.cfg.steer) === JSON.stringify(cfg.steer);
    out.steer = same ? previous!.images.steer : (await SteerStage.sliced(cfg.steer)).image();
  }
  if (cfg.policy) {
    const same = previous?.images.policy && JSON.stringify(previous.cfg.policy) === JSON.stringify(cfg.policy);
    out.policy = same ? previous!.images.policy : new PolicyStage(cfg.policy).image();
  }
  return out;
}

/** The section of cfg an area reads, for reload's "unchanged → keep the running stage" test. */
export function areaSection(cfg: Config, key: string): unknown {
  return (cfg as Record<string, unknown>)[key];
}

/** The stages a config runs, in pipeline order, each with the key of the area that built it. */
export function buildStages(cfg: Config, opts: StageOptions, reuse?: { cfg: Config; stages: Map<string, Stage> }): { key: string; stage: Stage }[] {
  return plan(cfg, reuse).map(({ area, old }) => ({ key: area.key, stage: old ?? area.build(cfg, opts) })).filter(hasStage);
}

/** buildStages for a reload: large sections (steer) compile in slices while the packet loop runs. */
export async function buildStagesSliced(cfg: Config, opts: StageOptions, reuse: { cfg: Config; stages: Map<string, Stage> }): Promise<{ key: string; stage: Stage }[]> {
  const out: { key: string; stage: Stage | null }[] = [];
  for (const { area, old } of plan(cfg, reuse)) {
    out.push({ key: area.key, stage: old ?? (area.buildSliced ? await area.buildSliced(cfg, opts) : area.build(cfg, opts)) });
  }
  return out.filter(hasStage);
}

/** The areas a config has, each with its running stage when its section did not change. */
function plan(cfg: Config, reuse?: { cfg: Config; stages: Map<string, Stage> }): { area: Area; old: Stage | null }[] {
  return AREAS.filter((area) => areaSection(cfg, area.key) !== undefined).map((area) => {
    const old = reuse?.stages.get(area.key);
    const same = old !== undefined && JSON.stringify(areaSection(reuse!.cfg, area.key)) === JSON.stringify(areaSection(cfg, area.key));
    return { area, old: same ? old : null };
  });
}

const hasStage = (x: { key: string; stage: Stage | null }): x is { key: string; stage: Stage } => x.stage !== null;

function captureArgs(c: CaptureConfig): string[] {
  const a: string[] = [];
  if (c.in) a.push('-i', c.in);
  if (c.out) a.push('-o', c.out);
  if (c.proto !== undefined) a.push('-p', String(c.proto));
  if (c.src) a.push('-s', c.src);
  if (c.dst) a.push('-d', c.dst);
  if (c.sport !== undefined) a.push('--sport', String(c.sport));
  if (c.dport !== undefined) a.push('--dport', String(c.dport));
  return a;
}

/** NFQUEUE rules for the queues' `capture` entries. */
export function queueRules(cfg: Config): RuleSet {
  const rs = emptyRuleSet();
  for (const q of cfg.queues) {
    for (const c of q.capture) {
      const target = ['-j', 'NFQUEUE', '--queue-num', String(q.num)];
      if (q.fail_open) target.push('--queue-bypass');
      rs.iptables.push({
        table: c.table, chain: c.chain.toUpperCase(), args: [...captureArgs(c), ...target],
        comment: `sluice queue ${q.num}: capture`,
      });
    }
  }
  return rs;
}

export function collectRules(cfg: Config): RuleSet {
  const present = AREAS.filter((area) => areaSection(cfg, area.key) !== undefined);
  return spreadQueues(cfg, mergeRuleSets(queueRules(cfg), ...present.map((area) => area.rules(cfg))));
}

/**
 * workers: N > 1: every `--queue-num q` becomes `--queue-balance q:q+N-1` (one queue per worker
 * thread), with `--queue-cpu-fanout` when queue_cpu_fanout is set; a rule marked oneThread keeps
 * `--queue-num q` (worker 0).
 */
export function spreadQueues(cfg: Config, rs: RuleSet): RuleSet {
  const n = cfg.workers ?? 1;
  if (n <= 1) return rs;
  for (const r of rs.iptables) {
    if (r.oneThread) continue;
    const i = r.args.indexOf('--queue-num');
    if (i < 0 || i + 1 >= r.args.length) continue;
    const q = Number(r.args[i + 1]);
    r.args.splice(i, 2, '--queue-balance', `${q}:${q + n - 1}`, ...(cfg.queue_cpu_fanout ? ['--queue-cpu-fanout'] : []));
  }
  return rs;
}

/** A `sluice check` warning and the config path it is about (for file:line). */
export interface ConfigWarning { path: (string | number)[]; message: string }

export function checkWarnings(cfg: Config): ConfigWarning[] {
  const out: ConfigWarning[] = [];
  const nums = new Set(cfg.queues.map((q) => q.num));
  cfg.queues.forEach((q, i) => {
    if (q.copy_range < 65535) out.push({ path: ['queues', i, 'copy_range'], message: `queues: queue ${q.num} copies ${q.copy_range} bytes: longer packets are decided on the headers present; one a stage must rewrite (NAT) is dropped (engine.truncated_rewrite)` });
  });
  for (const area of AREAS) {
    if (areaSection(cfg, area.key) !== undefined) out.push(...area.check(cfg).map((w) => ({ path: [area.key], message: `${area.key}: ${w}` })));
  }
  if (nums.size === 0) out.push({ path: ['queues'], message: 'no queues: sluice would receive nothing' });
  return out;
}
