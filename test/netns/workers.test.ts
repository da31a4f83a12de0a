/**
 * `workers: 2` on the real kernel, beyond what the per-area files check in that mode (scripts/test.sh
 * runs them again with SLUICE_TEST_WORKERS=2):
 * - metrics: the per-worker counters a scrape of /metrics shows add up to what was sent, labelled
 *   as docs/operator.md says (one `queue` label per worker queue, the rest summed);
 * - reload under a steady stream spread over both workers' queues: 20 reloads, alternately by
 *   SIGHUP and by `sluice reload`, lose no packet and leave none without a verdict; after a reload
 *   the new rules decide in every worker (a burst from 16 sources reaches both queues and all of it
 *   leaves by the new rule's route).
 *
 *   client 192.168.1.20-35 ─ lan0 [gw: sluice steer, workers: 2] wan0 (mark 0x10) / wan1 (mark 0x20) ─ server
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { labSkipReason, sleep, until } from './lab';
import { SluiceProcess, SLUICE_MAIN } from '../../src/lab/sluice';
import { UdpSink } from '../../src/lab/traffic';
import { rulesTool } from './steer-helpers';
import { queueReceived, sendSpread, steerYaml, workersGateway } from './fixtures/workers-lab';

const skip = labSkipReason();

/** `name{labels} value` lines of a scrape → value by `name{labels}` as printed. */
function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of text.split('\n')) {
    const x = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(l);
    if (x) m.set(x[1]!, Number(x[2]));
  }
  return m;
}

test('metrics with workers: 2: per-queue counters of both workers and the summed engine, stage and rule counters equal the packets sent', { skip, timeout: 90000 }, async (t) => {
  const g = await workersGateway('wkm');
  t.after(() => g.lab.cleanup());
  const yaml = steerYaml({ queue: 47, mark: '0x10', port: 9203, metrics: '127.0.0.1:9477' });
  await rulesTool(g.lab, g.gw, 'apply', SluiceProcess.write(g.lab, 'rules.yaml', yaml));
  const sl = await SluiceProcess.start(g.lab, g.gw, yaml);
  const sink = await UdpSink.start(g.server, 9203);
  await sendSpread(g.client, 9203, 800, 1000);
  await sleep(300);
  assert.equal((await sink.finish()).received, 800);
  // Worker stats reach the scrape within a second (workers.ts STATS_REFRESH_MS).
  const scrape = async () => parseMetrics((await g.gw.exec(['curl', '-sf', 'http://127.0.0.1:9477/metrics'])).stdout);
  const m = (await until(async () => { const s = await scrape(); return s.get('sluice_packets_total') === 800 ? s : undefined; }, 5000, 'sluice_packets_total 800'))!;
  const q47 = m.get('sluice_queue_packets_total{queue="47"}') ?? 0, q48 = m.get('sluice_queue_packets_total{queue="48"}') ?? 0;
  t.diagnostic(`queue 47: ${q47}, queue 48: ${q48}`);
  assert.ok(q47 > 0 && q48 > 0, 'both workers\' queues are exported, each under its own queue label');
  assert.equal(q47 + q48, 800, 'per-queue packets add up to the packets sent');
  const q = await queueReceived(sl);
  assert.deepEqual([q.get(47), q.get(48)], [q47, q48], 'the same per-queue numbers as `sluice stats`');
  assert.equal(m.get('sluice_verdicts_total{verdict="accept"}'), 800);
  assert.equal(m.get('sluice_engine_events_total{event="marked"}'), 800);
  assert.equal(m.get('sluice_stage_decisions_total{stage="steer",decision="accept"}'), 800);
  assert.equal(m.get('sluice_rule_hits_total{stage="steer",rule="stream"}'), 800);
  assert.equal((m.get('sluice_queue_verdicts_total{queue="47"}') ?? 0) + (m.get('sluice_queue_verdicts_total{queue="48"}') ?? 0), 800, 'a verdict for every packet');
  assert.equal([...m.keys()].filter((k) => /worker/.test(k)).length, 0, 'no undocumented worker label');
  await sl.stop();
});

function reloadCli(socket: string): Promise<number> {
  return new Promise((resolve) => execFile(process.execPath, [SLUICE_MAIN, 'reload', '-s', socket], (err) => resolve(err ? Number((err as { code?: number }).code ?? 1) : 0)));
}

test('reload with workers: 2 under a stream over both queues: 20 reloads (SIGHUP and control) lose nothing; new rules decide in every worker', { skip, timeout: 120000 }, async (t) => {
  const g = await workersGateway('wkr');
  t.after(() => g.lab.cleanup());
  const socket = g.lab.path('wkr.sock');
  const A = steerYaml({ queue: 50, mark: '0x10', port: 9204, socket }), B = steerYaml({ queue: 50, mark: '0x20', port: 9204, socket });
  const sl = await SluiceProcess.start(g.lab, g.gw, A, { name: 'wkr' });
  await rulesTool(g.lab, g.gw, 'apply', SluiceProcess.write(g.lab, 'rules.yaml', A)); // the capture is the same in A and B
  await g.gw.sh('ip rule add fwmark 0x20/0xff lookup 100 priority 500');
  const reloaded = (trigger: string): number => (sl.proc.output.match(new RegExp(`"trigger":"${trigger}"[^\\n]*"msg":"reloaded"`, 'g')) ?? []).length;
  /** Writes cfg and reloads it by SIGHUP or the control socket; resolves once it is in place. */
  const reload = async (cfg: string, how: 'SIGHUP' | 'control'): Promise<void> => {
    writeFileSync(sl.configFile, cfg);
    if (how === 'control') { assert.equal(await reloadCli(socket), 0, 'sluice reload accepted'); return; }
    const before = reloaded('SIGHUP');
    process.kill(sl.proc.pid, 'SIGHUP');
    await until(() => reloaded('SIGHUP') > before, 10000, 'SIGHUP reload logged');
  };

  const sink = await UdpSink.start(g.server, 9204);
  const before = { wan0: await g.gw.counters('wan0'), wan1: await g.gw.counters('wan1') };
  const stream = sendSpread(g.client, 9204, 4000, 400);
  for (let i = 0; i < 20; i++) {
    await sleep(300);
    await reload(i % 2 === 0 ? B : A, i % 4 < 2 ? 'SIGHUP' : 'control');
  }
  await stream;
  await sleep(300);
  const got = (await sink.finish()).received;
  const after = { wan0: await g.gw.counters('wan0'), wan1: await g.gw.counters('wan1') };
  const w0 = after.wan0.tx - before.wan0.tx, w1 = after.wan1.tx - before.wan1.tx;
  const st = await sl.stats();
  t.diagnostic(`received ${got}; wan0 ${w0}, wan1 ${w1}; queues ${st.queues.map((q) => `${q.queue}:${q.received}/${q.verdicts}`).join(' ')}; reloads SIGHUP ${reloaded('SIGHUP')} control ${reloaded('control')}`);
  assert.equal(got, 4000, 'no packet lost across 20 reloads');
  assert.equal(reloaded('SIGHUP'), 10);
  assert.equal(reloaded('control'), 10);
  assert.doesNotMatch(sl.proc.output, /reload refused/);
  assert.ok(w0 > 300 && w1 > 300 && w0 + w1 >= 4000, `both configs steered (wan0 ${w0}, wan1 ${w1})`);
  assert.ok(st.queues.every((q) => Number(q.received) > 0), 'the stream reached both workers');
  assert.equal(st.queues.reduce((n, q) => n + Number(q.received), 0), 4000);
  assert.equal(st.queues.reduce((n, q) => n + Number(q.verdicts), 0), 4000, 'a verdict for every packet');
  assert.equal(st.held, 0);
  assert.equal(await sl.counter('engine.marked'), 4000);

  // The last reload wrote A (i = 19). Each reload now switches the route; a burst from 16 sources
  // must reach both workers and leave all by the new rule's interface.
  for (const [cfg, how, out, other] of [[B, 'SIGHUP', 'wan1', 'wan0'], [A, 'control', 'wan0', 'wan1']] as const) {
    await reload(cfg, how);
    const q0 = await queueReceived(sl);
    const c0 = { [out]: await g.gw.counters(out), [other]: await g.gw.counters(other) };
    const burst = await UdpSink.start(g.server, 9204);
    await sendSpread(g.client, 9204, 320, 1000);
    await sleep(300);
    assert.equal((await burst.finish()).received, 320);
    const q1 = await queueReceived(sl);
    const dOut = (await g.gw.counters(out)).tx - c0[out]!.tx, dOther = (await g.gw.counters(other)).tx - c0[other]!.tx;
    t.diagnostic(`after the ${how} reload: ${out} +${dOut}, ${other} +${dOther}; queue 50 +${q1.get(50)! - q0.get(50)!}, queue 51 +${q1.get(51)! - q0.get(51)!}`);
    assert.ok(q1.get(50)! > q0.get(50)! && q1.get(51)! > q0.get(51)!, 'the burst reached both workers');
    assert.ok(dOut >= 320 && dOther < 10, `every packet left ${out}: the new rule decided in both workers (${out} +${dOut}, ${other} +${dOther})`);
  }
  await sl.stop();
});
