/**
 * Reload under a steady UDP stream (issue: "no packet lost ... the old config stays if the new one is
 * invalid"). gw queues the client's UDP to 192.0.2.10:9100 in mangle PREROUTING (generated from the
 * steer rules' capture); config A marks it 0x10, config B 0x20, and `ip rule fwmark 0x20/0xff lookup
 * 100` sends B's packets out wan1 instead of wan0, so the interface counters show which compiled
 * matcher handled each packet. 20 reloads (A, B, A, ...) during 3000 packets at 400 pps: every packet
 * arrives and both links carried traffic. Then an invalid config: `sluice reload` is refused, and the
 * running matcher (B) keeps steering; and a FIFO in place of the config file: refused at once with a
 * clear error (the reload reads only regular files, with a 5 s read timeout), the matcher kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { unlinkSync, writeFileSync } from 'node:fs';
import { labSkipReason, sleep } from './lab';
import { SluiceProcess, SLUICE_MAIN } from '../../src/lab/sluice';
import { UdpSink, sendUdp } from '../../src/lab/traffic';
import { gatewayLab } from './gateway';
import { rulesTool } from './steer-helpers';
import { startSluiceWorkers, withTestWorkers } from '../kit/workers';

const skip = labSkipReason();
if (skip) console.log(`# skipping steer-reload: ${skip}`);

/** Config A or B (with SLUICE_TEST_WORKERS=N: `workers: N`, test/kit/workers.ts). */
const config = (mark: string, socket: string): string => withTestWorkers(`queues:
  - num: 13
    fail_open: false
steer:
  capture: { queue: 13, bypass: false, hooks: [prerouting] }
  rules:
    - name: stream-${mark}
      match: { in: lan0, proto: udp, dst: 192.0.2.10, dport: 9100 }
      action: { mark: "${mark}/0xff", then: accept }
control:
  socket: ${socket}
`);

function reloadCli(socket: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SLUICE_MAIN, 'reload', '-s', socket], (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

test('20 reloads under a steady UDP stream lose nothing; an invalid reload keeps the old matcher', { skip, timeout: 120000 }, async (t) => {
  const g = await gatewayLab('srl');
  t.after(() => g.lab.cleanup());
  const socket = g.lab.path('srl.sock');
  const s = await startSluiceWorkers(g.lab, g.gw, config('0x10', socket), { name: 'srl' });
  const file = s.configFile;
  const rulesFile = SluiceProcess.write(g.lab, 'srl-rules.yaml', config('0x10', socket)); // the capture rules are the same in A and B
  await rulesTool(g.lab, g.gw, 'apply', rulesFile);
  await g.gw.sh('ip rule add fwmark 0x20/0xff lookup 100 priority 500');
  try {
    const sink = await UdpSink.start(g.server, 9100);
    const before = { wan0: await g.gw.counters('wan0'), wan1: await g.gw.counters('wan1') };
    const stream = sendUdp(g.client, '192.0.2.10', 9100, 3000, { pps: 400 });
    const results: number[] = [];
    for (let i = 0; i < 20; i++) {
      await sleep(300);
      writeFileSync(file, config(i % 2 === 0 ? '0x20' : '0x10', socket));
      results.push((await reloadCli(socket)).code);
    }
    await stream;
    await sleep(300);
    const got = await sink.finish();
    const after = { wan0: await g.gw.counters('wan0'), wan1: await g.gw.counters('wan1') };
    assert.deepEqual(results, new Array(20).fill(0), 'every reload accepted');
    assert.equal(got.received, 3000, 'no packet lost across 20 reloads');
    const w0 = after.wan0.tx - before.wan0.tx, w1 = after.wan1.tx - before.wan1.tx;
    assert.ok(w0 > 300 && w1 > 300 && w0 + w1 >= 3000, `both matchers steered (wan0 ${w0}, wan1 ${w1})`);
    assert.equal(await s.counter('engine.marked'), 3000);

    // Last valid config: mark 0x10 (i = 19 wrote 0x10). Now an invalid one (port out of range).
    writeFileSync(file, config('0x20', socket).replace('dport: 9100', 'dport: 91000'));
    const bad = await reloadCli(socket);
    assert.notEqual(bad.code, 0, 'the invalid reload is refused');
    assert.match(bad.out, /dport/, `the refusal names the field: ${bad.out}`);
    const sink2 = await UdpSink.start(g.server, 9100);
    const b1 = await g.gw.counters('wan1');
    await sendUdp(g.client, '192.0.2.10', 9100, 200, { pps: 1000 });
    await sleep(300);
    assert.equal((await sink2.finish()).received, 200, 'still forwarding');
    assert.ok((await g.gw.counters('wan1')).tx - b1.tx < 10, 'still mark 0x10 (main table, wan0): the old matcher stayed');
    assert.equal(await s.counter('engine.marked'), 3200);
    assert.ok(s.proc.running, 'sluice kept running');

    // A FIFO at the config path that nobody writes to (it used to block a SIGHUP reload forever):
    // refused at once, well within the 5 s read timeout, with a clear error; the old matcher stays.
    unlinkSync(file);
    execFileSync('mkfifo', [file]);
    const t0 = Date.now();
    const fifo = await reloadCli(socket);
    const took = Date.now() - t0;
    assert.notEqual(fifo.code, 0, 'the reload from a FIFO is refused');
    assert.match(fifo.out, /is a FIFO; sluice reads its config only from a regular file/, fifo.out);
    assert.ok(took < 5000, `refused in ${took} ms`);
    const sink3 = await UdpSink.start(g.server, 9100);
    const b2 = await g.gw.counters('wan1');
    await sendUdp(g.client, '192.0.2.10', 9100, 200, { pps: 1000 });
    await sleep(300);
    assert.equal((await sink3.finish()).received, 200, 'still forwarding after the FIFO reload');
    assert.ok((await g.gw.counters('wan1')).tx - b2.tx < 10, 'still the old matcher');
    assert.equal(await s.counter('engine.marked'), 3400);
    assert.ok(s.proc.running, 'sluice kept running');
  } finally {
    await s.stop();
    await g.gw.sh('ip rule del fwmark 0x20/0xff lookup 100 priority 500', { allowFail: true });
    await rulesTool(g.lab, g.gw, 'remove', rulesFile);
  }
});
