/**
 * A worker thread that dies after start, on the real kernel (docs/config.md "workers"): sluice must
 * not go on as a half-working gateway. It logs the death, stops (the other worker decides its held
 * packets and closes its queue) and exits with code 70; with no listener left on the queues, the
 * kernel applies each queue's fail_open: `--queue-bypass` (fail_open: true) passes the traffic,
 * without it (fail_open: false) the traffic is dropped.
 *
 *   client 192.168.1.20-35 ─ lan0 [gw: sluice steer, workers: 2] wan0 ─ server 192.0.2.10
 *
 * The fault is real in the thread and injected from outside sluice (fixtures/worker-fault.ts, loaded
 * with node's --require; nothing in sluice reads it): an exception nobody catches, and the V8 heap
 * limit (--max-old-space-size) exhausted, which Node answers with ERR_WORKER_OUT_OF_MEMORY. No
 * shipped config makes a worker fail on its own: a worker's compiled stages take ~1 MB of heap for
 * a config whose parsed form takes ~8 MB in the main thread (1,000 rules and a 100k-address set),
 * so a heap limit ends the main thread or the config loader first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { labSkipReason, sleep } from './lab';
import { SluiceProcess } from '../../src/lab/sluice';
import { UdpSink } from '../../src/lab/traffic';
import { rulesTool } from './steer-helpers';
import { queueReceived, sendSpread, startWithNodeArgs, steerYaml, workersGateway } from './fixtures/workers-lab';

const FAULT = resolve(__dirname, 'fixtures/worker-fault.js');

const cases = [
  { kind: 'throw', failOpen: true, queue: 41, port: 9201, why: /worker-fault: injected exception in worker 1/ },
  { kind: 'oom', failOpen: false, queue: 44, port: 9202, why: /memory limit/ },
] as const;

for (const c of cases) {
  test(`worker 1 dies (${c.kind}) under traffic: sluice logs it and exits 70; fail_open: ${c.failOpen} → the kernel ${c.failOpen ? 'passes' : 'drops'} the queues' traffic`, { skip: labSkipReason(), timeout: 90000 }, async (t) => {
    const g = await workersGateway(`wkc${c.kind.slice(0, 2)}`);
    t.after(() => g.lab.cleanup());
    const yaml = steerYaml({ queue: c.queue, mark: '0x10', port: c.port, failOpen: c.failOpen });
    await rulesTool(g.lab, g.gw, 'apply', SluiceProcess.write(g.lab, 'rules.yaml', yaml));
    const rules = await g.gw.sh('iptables -t mangle -S');
    assert.match(rules, new RegExp(`--queue-balance ${c.queue}:${c.queue + 1}${c.failOpen ? ' --queue-bypass' : '(?! --queue-bypass)'}`), rules);
    const trigger = g.lab.path('fault');
    const nodeArgs = ['--require', FAULT, ...(c.kind === 'oom' ? ['--max-old-space-size=96'] : [])];
    const sl = await startWithNodeArgs(g.lab, g.gw, yaml, nodeArgs, { SLUICE_TEST_FAULT_FILE: trigger });

    // Before: every datagram passes, decided by both workers.
    const sink = await UdpSink.start(g.server, c.port);
    await sendSpread(g.client, c.port, 320, 1000);
    await sleep(300);
    assert.equal((await sink.finish()).received, 320, 'the stream passes while both workers run');
    const q = await queueReceived(sl);
    t.diagnostic(`queues before the fault: ${[...q].map(([n, v]) => `${n}:${v}`).join(' ')}`);
    assert.ok((q.get(c.queue) ?? 0) > 0 && (q.get(c.queue + 1) ?? 0) > 0, 'both workers decided part of the stream');

    // The fault, in worker 1 while a stream runs through both queues.
    const during = await UdpSink.start(g.server, c.port);
    const stream = sendSpread(g.client, c.port, 2000, 1000);
    await sleep(500);
    const t0 = Date.now();
    writeFileSync(trigger, `1 ${c.kind}`);
    const code = await Promise.race([sl.proc.exited, sleep(20000).then(() => 'still running')]);
    const took = Date.now() - t0;
    await stream;
    await sleep(300);
    const got = (await during.finish()).received;
    const fatal = sl.proc.output.split('\n').filter((l) => /"level":60/.test(l));
    t.diagnostic(`exit ${String(code)} ${took} ms after the fault; ${got} of 2000 datagrams of the stream arrived; fatal log: ${fatal.join(' | ').slice(0, 600)}`);
    assert.equal(code, 70, `sluice exits with code 70:\n${sl.proc.output.slice(-2000)}`);
    // Not after a stop request to the dead thread timed out (3 s, workers.ts STOP_TIMEOUT_MS): the
    // other worker must not go on deciding its half of the traffic meanwhile.
    assert.ok(took < 2500, `exited ${took} ms after the fault`);
    assert.equal(fatal.length, 1, 'one fatal line: the first cause (the thread\'s error, not also its exit)');
    assert.ok(/worker thread died/.test(fatal[0]!) && /"worker":1/.test(fatal[0]!) && c.why.test(fatal[0]!), 'the death is logged, with the worker and why');
    assert.match(sl.proc.output, /sluice stopped/, 'stopped in order (the other worker\'s queue closed, held packets decided)');

    // After: no listener on either queue; the kernel applies fail_open.
    const bound = (await g.gw.sh('cat /proc/net/netfilter/nfnetlink_queue')).split('\n').map((l) => Number(l.trim().split(/\s+/)[0]));
    assert.ok(!bound.includes(c.queue) && !bound.includes(c.queue + 1), `no queue left bound: ${bound.join(',')}`);
    const after = await UdpSink.start(g.server, c.port);
    await sendSpread(g.client, c.port, 320, 1000);
    await sleep(300);
    const passed = (await after.finish()).received;
    if (c.failOpen) {
      assert.equal(passed, 320, 'fail_open: true: --queue-bypass passes every datagram');
      assert.ok(got >= 1500, `fail_open: true: the stream mostly passed through the crash (${got} of 2000)`);
    } else {
      assert.equal(passed, 0, 'fail_open: false: without a listener every datagram is dropped');
    }
  });
}
