/**
 * Prometheus endpoint. Values are read from the engine's counters at scrape time (the hot path only
 * bumps typed-array slots); prom-client's registry writes the exposition format. Every family has
 * a fixed name and label set, listed in docs/operator.md#prometheus: counters are Counters (with
 * `_total`), only levels (held packets, SAs, hosts...) are Gauges, and what varies (queue, stage,
 * reason, rule) is a label, never part of the name.
 */
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { splitListen } from '../config/core';

/** One scrape's worth of plain numbers, taken once per scrape. */
export interface MetricsSnapshot {
  /** Every engine counter (dotted names: `engine.packets`, `nat.ambiguous`...), zero ones included. */
  counters: { name: string; value: number }[];
  /** Drop verdicts per reason counter name (Counters.dropSnapshot()). */
  drops: { name: string; value: number }[];
  /** Per stage: decisions by kind (continue, accept, drop, hold, answered). */
  decisions: Record<string, Record<string, number>>;
  /** Rule hits per stage and rule name (every rule, not only drops). */
  ruleHits: { stage: string; rule: string; value: number }[];
  /** NFQUEUE sources: the addon's stats by queue number. */
  queues: { queue: number; stats: Record<string, number> }[];
  /** TUN sources by device name. */
  tuns: { tun: string; stats: Record<string, number> }[];
  /** Levels: packets held now, and per-stage state (NAT SAs, hosts...), as (stage, name) → value. */
  held: number;
  levels: { stage: string; name: string; value: number }[];
  /** Gauges a stage names itself (alarms such as nat_journal_degraded), exported as sluice_<name>. */
  stageGauges: { name: string; help: string; value: number }[];
}

export interface MetricsInfo {
  version: string;
}

/** Source stats keys that are levels (gauges); every other numeric key is a counter. */
const LEVEL_KEYS = new Set(['heldOutstanding', 'lastErrno']);

const snake = (camel: string): string => camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The name a source stats key is exported under (`received` → `packets`, the usual word). */
function sourceKey(key: string): string {
  return key === 'received' ? 'packets' : snake(key);
}

/**
 * Splits an engine counter name into its metric and labels:
 *   engine.packets → sluice_packets_total; engine.accepted/dropped → sluice_verdicts_total{verdict};
 *   engine.invalid.X → sluice_invalid_packets_total{reason}; engine.stage_error.S → sluice_stage_errors_total{stage};
 *   other engine.X → sluice_engine_events_total{event}; S.X → sluice_stage_events_total{stage, event}.
 */
export function counterSeries(name: string): { family: string; labels: Record<string, string> } {
  const dot = name.indexOf('.');
  const owner = dot < 0 ? 'engine' : name.slice(0, dot);
  const rest = dot < 0 ? name : name.slice(dot + 1);
  if (owner === 'engine') {
    if (rest === 'packets') return { family: 'packets', labels: {} };
    if (rest === 'batches') return { family: 'batches', labels: {} };
    if (rest === 'accepted') return { family: 'verdicts', labels: { verdict: 'accept' } };
    if (rest === 'dropped') return { family: 'verdicts', labels: { verdict: 'drop' } };
    if (rest.startsWith('invalid.')) return { family: 'invalid_packets', labels: { reason: rest.slice(8) } };
    if (rest.startsWith('stage_error.')) return { family: 'stage_errors', labels: { stage: rest.slice(12) } };
    return { family: 'engine_events', labels: { event: rest } };
  }
  return { family: 'stage_events', labels: { stage: owner, event: rest } };
}

/** The (stage, reason) labels of a drop reason counter. */
export function dropLabels(name: string): { stage: string; reason: string } {
  const dot = name.indexOf('.');
  if (dot < 0) return { stage: 'engine', reason: name };
  const owner = name.slice(0, dot);
  const rest = name.slice(dot + 1);
  if (owner === 'engine' && rest.startsWith('stage_error.')) return { stage: rest.slice(12), reason: 'stage_error' };
  return { stage: owner, reason: rest };
}

const COUNTER_FAMILIES: Record<string, { help: string; labels: string[] }> = {
  packets: { help: 'packets received from all queues and TUN devices', labels: [] },
  batches: { help: 'batches received from all queues and TUN devices', labels: [] },
  verdicts: { help: 'verdicts sent, by verdict (drop includes answered packets)', labels: ['verdict'] },
  invalid_packets: { help: 'packets the packet layer could not read, by reason (they get the source\'s on_invalid verdict)', labels: ['reason'] },
  stage_errors: { help: 'packets on which a stage threw (a bug: please report it with the log line)', labels: ['stage'] },
  engine_events: { help: 'engine events (held, released, answered, marked, rewritten, injected...): docs/operator.md#counters', labels: ['event'] },
  stage_events: { help: 'stage counters, drop reasons and events alike (docs/config.md, docs/nat.md#counters)', labels: ['stage', 'event'] },
};

export function metricsRegistry(read: () => MetricsSnapshot, info: MetricsInfo): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({ name: 'sluice_build_info', help: 'sluice version and Node.js version (always 1)', labelNames: ['version', 'node'], registers: [registry] })
    .set({ version: info.version, node: process.versions.node }, 1);

  // One snapshot per scrape, taken before prom-client runs the collect() hooks below.
  let snap: MetricsSnapshot | null = null;
  const now = (): MetricsSnapshot => snap ?? (snap = read());

  for (const [family, f] of Object.entries(COUNTER_FAMILIES)) {
    new Counter({
      name: `sluice_${family}_total`, help: f.help, labelNames: f.labels, registers: [registry],
      collect() {
        this.reset();
        for (const c of now().counters) {
          const s = counterSeries(c.name);
          if (s.family === family) this.inc(s.labels, c.value);
        }
      },
    });
  }
  new Counter({
    name: 'sluice_drops_total', registers: [registry], labelNames: ['stage', 'reason'],
    help: 'drop verdicts by the stage and reason that decided them (held packets a stage later drops itself are in that stage\'s own counters)',
    collect() {
      this.reset();
      for (const d of now().drops) this.inc(dropLabels(d.name), d.value);
    },
  });
  new Counter({
    name: 'sluice_stage_decisions_total', registers: [registry], labelNames: ['stage', 'decision'],
    help: 'packets each stage decided (continue = passed on to the next stage)',
    collect() {
      this.reset();
      for (const [stage, row] of Object.entries(now().decisions)) for (const [decision, v] of Object.entries(row)) this.inc({ stage, decision }, v);
    },
  });
  new Counter({
    name: 'sluice_rule_hits_total', registers: [registry], labelNames: ['stage', 'rule'],
    help: 'packets each steer rule / policy matched (every rule, whatever its action)',
    collect() {
      this.reset();
      for (const r of now().ruleHits) this.inc({ stage: r.stage, rule: r.rule }, r.value);
    },
  });
  new Gauge({
    name: 'sluice_held_packets', help: 'packets held by stages now', registers: [registry],
    collect() { this.set(now().held); },
  });
  new Gauge({
    name: 'sluice_stage_state', help: 'levels a stage reports (nat: sas, hosts, held, turns, table_bytes; dhcp: rate_limited_clients)',
    labelNames: ['stage', 'name'], registers: [registry],
    collect() {
      this.reset();
      for (const l of now().levels) this.set({ stage: l.stage, name: l.name }, l.value);
    },
  });
  sourceFamilies(registry, 'queue', now, (s) => s.queues.map((q) => ({ label: String(q.queue), stats: q.stats })),
    'NFQUEUE'); // the addon's counters per queue
  sourceFamilies(registry, 'tun', now, (s) => s.tuns.map((t) => ({ label: t.tun, stats: t.stats })), 'TUN');

  // Stage-named gauges appear on the first scrape that reports them (a reload may add a stage).
  const stageGauges = new Set<string>();
  const addStageGauges = (): void => {
    for (const g of now().stageGauges) {
      const name = `sluice_${g.name.replace(/[^a-zA-Z0-9_]/g, '_')}`;
      if (stageGauges.has(name) || registry.getSingleMetric(name)) continue;
      stageGauges.add(name);
      new Gauge({ name, help: g.help, registers: [registry], collect() { this.set(now().stageGauges.find((x) => x.name === g.name)?.value ?? 0); } });
    }
  };
  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => {
    snap = null;
    try {
      addStageGauges();
      return await metrics();
    } finally { snap = null; }
  };
  return registry;
}

/**
 * Keys every source of a kind reports (fixed by the addon): one family each, so the names stay
 * stable. Derived values (meanBatch = packets / batches) are left out; a key the addon gains is
 * exported once it is listed here (and in docs/operator.md).
 */
const SOURCE_KEYS = {
  queue: ['received', 'batches', 'verdicts', 'sendmsgCalls', 'batchVerdicts', 'errors', 'enobufs', 'heldOutstanding',
    'truncated', 'unparsed', 'unverdicted', 'badVerdicts', 'badLengths', 'badReleases', 'repeatedEarly', 'lastErrno'],
  tun: ['received', 'batches', 'written', 'dropped', 'held', 'marksIgnored', 'errors', 'lastErrno', 'releasedWithoutPayload'],
} as const;

function sourceFamilies(registry: Registry, kind: 'queue' | 'tun', now: () => MetricsSnapshot,
  pick: (s: MetricsSnapshot) => { label: string; stats: Record<string, number> }[], what: string): void {
  for (const key of SOURCE_KEYS[kind]) {
    const level = LEVEL_KEYS.has(key);
    const name = `sluice_${kind}_${sourceKey(key)}${level ? '' : '_total'}`;
    const help = `${what} source: ${key} (docs/operator.md#prometheus)`;
    const fill = (set: (labels: Record<string, string>, v: number) => void): void => {
      for (const s of pick(now())) {
        const v = s.stats[key];
        if (typeof v === 'number') set({ [kind]: s.label }, v);
      }
    };
    if (level) new Gauge({ name, help, labelNames: [kind], registers: [registry], collect() { this.reset(); fill((l, v) => this.set(l, v)); } });
    else new Counter({ name, help, labelNames: [kind], registers: [registry], collect() { this.reset(); fill((l, v) => this.inc(l, v)); } });
  }
}

export function serveMetrics(listen: string, registry: Registry): Promise<Server> {
  const hp = splitListen(listen);
  if (!hp) return Promise.reject(new Error(`metrics.listen ${listen}: host:port or [v6]:port`));
  const { host, port } = hp;
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('see /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(`${err.message}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
