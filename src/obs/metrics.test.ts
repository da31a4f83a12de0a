/**
 * The Prometheus endpoint over HTTP: an engine with a dropping stage runs a batch, the endpoint is
 * scraped, and the exposition text (written by prom-client) is parsed for each family's TYPE and
 * each sample's labels. Counters must be counters, levels gauges, and what varies a label.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { M_CAPACITY, M_ID, M_LENGTH, M_OFFSET, META_STRIDE, type Batch } from '../io/batch-layout';
import { Interfaces } from '../io/interfaces';
import { Engine } from '../engine/engine';
import { Verdict, type Decision, type PacketContext, type Stage, type StageServices } from '../engine/stage';
import { counterSeries, dropLabels, metricsRegistry, serveMetrics, type MetricsSnapshot } from './metrics';

function batchOf(n: number): Batch {
  const slab = new Uint8Array(256 * n);
  const meta = new Uint32Array(META_STRIDE * n);
  // IPv4/UDP 10.0.0.1 → 10.0.0.2, valid header checksum.
  const p = [0x45, 0, 0, 36, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 3, 232, 0, 53, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (p[i]! << 8) | p[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  p[10] = (~sum >> 8) & 255; p[11] = ~sum & 255;
  for (let i = 0; i < n; i++) {
    slab.set(p, i * 256);
    meta[i * META_STRIDE + M_ID] = i + 1;
    meta[i * META_STRIDE + M_OFFSET] = i * 256;
    meta[i * META_STRIDE + M_LENGTH] = p.length;
    meta[i * META_STRIDE + M_CAPACITY] = 256;
  }
  return { slab, meta, count: n };
}

/** Drops every other packet as nat.ambiguous, counts an event on each. */
class HalfDrop implements Stage {
  readonly name = 'nat';
  readonly failure = 'closed' as const;
  private ambiguous = 0;
  private seen = 0;
  private services!: StageServices;
  private n = 0;
  init(s: StageServices): void {
    this.services = s;
    this.ambiguous = s.reason('nat.ambiguous', 'test: ambiguous');
    this.seen = s.reason('nat.in', 'test: seen');
  }
  process(_ctx: PacketContext, d: Decision): void {
    this.services.count(this.seen);
    if (this.n++ % 2 === 0) d.drop(this.ambiguous);
    else d.verdict = Verdict.ACCEPT;
  }
}

interface Sample { name: string; labels: Record<string, string>; value: number }

/** The exposition format's TYPE lines and samples (enough of it to check what prom-client wrote). */
function parse(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) { types.set(t[1]!, t[2]!); continue; }
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparsable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.keys(labels).length === Object.keys(s.labels).length &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

test('counter names map to stable families and labels', () => {
  assert.deepEqual(counterSeries('engine.packets'), { family: 'packets', labels: {} });
  assert.deepEqual(counterSeries('engine.dropped'), { family: 'verdicts', labels: { verdict: 'drop' } });
  assert.deepEqual(counterSeries('engine.invalid.truncated'), { family: 'invalid_packets', labels: { reason: 'truncated' } });
  assert.deepEqual(counterSeries('engine.stage_error.nat'), { family: 'stage_errors', labels: { stage: 'nat' } });
  assert.deepEqual(counterSeries('engine.held_cap'), { family: 'engine_events', labels: { event: 'held_cap' } });
  assert.deepEqual(counterSeries('dhcp.inform.answered'), { family: 'stage_events', labels: { stage: 'dhcp', event: 'inform.answered' } });
  assert.deepEqual(dropLabels('engine.stage_error.policy'), { stage: 'policy', reason: 'stage_error' });
  assert.deepEqual(dropLabels('steer.block-ssh'), { stage: 'steer', reason: 'block-ssh' });
});

test('the endpoint exports counters as labelled counters and levels as gauges', async () => {
  const engine = new Engine({ held: { max: 4, timeoutMs: 50, defaultVerdict: 'accept' }, interfaces: Interfaces.fromList([]) });
  const released: number[] = [];
  const src = engine.addSource({ release: (_id, v) => { released.push(v); } }, 5, { defaultVerdict: 'accept', onInvalid: 'drop' });
  engine.setPipeline([new HalfDrop()]);
  engine.handleBatch(src, batchOf(6));
  await engine.close();

  const snapshot = (): MetricsSnapshot => ({
    counters: engine.counters.snapshot(true),
    drops: engine.counters.dropSnapshot(),
    decisions: engine.stageCounts(),
    ruleHits: [{ stage: 'steer', rule: 'voip', value: 7 }],
    queues: [{ queue: 5, stats: { received: 6, batches: 1, enobufs: 0, heldOutstanding: 2, lastErrno: 0, meanBatch: 6 } }],
    tuns: [{ tun: 'sl0', stats: { received: 3, written: 1 } }],
    held: 2,
    levels: [{ stage: 'nat', name: 'sas', value: 12 }, { stage: 'nat', name: 'hosts', value: 3 }],
    stageGauges: [{ name: 'nat_journal_degraded', help: 'alarm', value: 1 }],
  });
  const registry = metricsRegistry(snapshot, { version: '9.9.9' });
  // metrics.listen takes a real port (1-65535): a random high one, another on a collision.
  let server: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  for (let tries = 0; !server; tries++) {
    try { server = await serveMetrics(`127.0.0.1:${20000 + Math.floor(Math.random() * 40000)}`, registry); } catch (e) { if (tries > 10) throw e; }
  }
  try {
    const port = (server.address() as AddressInfo).port;
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const { types, samples } = parse(await res.text());

    // Counters, with their labels.
    assert.equal(types.get('sluice_drops_total'), 'counter');
    assert.equal(value(samples, 'sluice_drops_total', { stage: 'nat', reason: 'ambiguous' }), 3);
    assert.equal(types.get('sluice_packets_total'), 'counter');
    assert.equal(value(samples, 'sluice_packets_total'), 6);
    assert.equal(value(samples, 'sluice_verdicts_total', { verdict: 'accept' }), 3);
    assert.equal(value(samples, 'sluice_verdicts_total', { verdict: 'drop' }), 3);
    assert.equal(types.get('sluice_stage_events_total'), 'counter');
    assert.equal(value(samples, 'sluice_stage_events_total', { stage: 'nat', event: 'in' }), 6);
    assert.equal(value(samples, 'sluice_stage_events_total', { stage: 'nat', event: 'ambiguous' }), 3);
    assert.equal(value(samples, 'sluice_stage_decisions_total', { stage: 'nat', decision: 'drop' }), 3);
    assert.equal(value(samples, 'sluice_rule_hits_total', { stage: 'steer', rule: 'voip' }), 7);
    assert.equal(types.get('sluice_queue_packets_total'), 'counter');
    assert.equal(value(samples, 'sluice_queue_packets_total', { queue: '5' }), 6);
    assert.equal(value(samples, 'sluice_queue_enobufs_total', { queue: '5' }), 0);
    assert.equal(value(samples, 'sluice_tun_packets_total', { tun: 'sl0' }), 3);
    assert.equal(value(samples, 'sluice_invalid_packets_total', { reason: 'truncated' }), 0, 'every invalid reason is exported, zero included');

    // Levels are gauges.
    assert.equal(types.get('sluice_held_packets'), 'gauge');
    assert.equal(value(samples, 'sluice_held_packets'), 2);
    assert.equal(types.get('sluice_queue_held_outstanding'), 'gauge');
    assert.equal(value(samples, 'sluice_queue_held_outstanding', { queue: '5' }), 2);
    assert.equal(types.get('sluice_stage_state'), 'gauge');
    assert.equal(value(samples, 'sluice_stage_state', { stage: 'nat', name: 'sas' }), 12);
    assert.equal(value(samples, 'sluice_build_info', { version: '9.9.9', node: process.versions.node }), 1);
    assert.equal(types.get('sluice_nat_journal_degraded'), 'gauge');
    assert.equal(value(samples, 'sluice_nat_journal_degraded'), 1, 'a stage\'s own gauge (an alarm)');
    assert.ok(!samples.some((s) => s.name.includes('mean_batch')), 'derived values are not exported');

    // Default process and event-loop metrics.
    assert.equal(types.get('process_cpu_seconds_total'), 'counter');
    assert.equal(types.get('nodejs_eventloop_lag_seconds'), 'gauge');

    // Every sluice family: counters end in _total, gauges do not; no queue number or stage in a name.
    for (const [name, type] of types) {
      if (!name.startsWith('sluice_')) continue;
      assert.ok(type === 'counter' || type === 'gauge', `${name}: ${type}`);
      assert.equal(name.endsWith('_total'), type === 'counter', `${name} is a ${type}`);
      if (name !== 'sluice_nat_journal_degraded') assert.doesNotMatch(name, /_\d+(_|$)|_nat_|_steer_|_dhcp_|_policy_/, `${name}: a label in the name`);
    }

    // A second scrape sees new values (the snapshot is per scrape, not cached).
    engine.handleBatch(src, batchOf(2));
    const again = parse(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    assert.equal(value(again.samples, 'sluice_packets_total'), 8);
    assert.equal(value(again.samples, 'sluice_drops_total', { stage: 'nat', reason: 'ambiguous' }), 4);

    assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});
