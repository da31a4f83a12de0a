/**
 * A worker thread that dies while the main thread waits on it (docs/config.md "workers"), on the
 * real kernel: in the middle of a reload (asked by `sluice reload` over the control socket, and by
 * SIGHUP), and while a `sluice trace` client is attached. In each case sluice logs the death once
 * (the worker and its cause), stops and exits 70 at once, not after the dead worker's reload answer
 * times out, and the clients are told: `sluice reload` and `sluice trace` end with the reason and
 * a non-zero exit instead of waiting.
 *
 *   client 192.168.1.20-35 ─ lan0 [gw: sluice steer, workers: 2] wan0 ─ server 192.0.2.10
 *
 * The fault is injected from outside sluice (fixtures/worker-fault.ts, loaded with node's --require):
 * `1 reload` makes worker 1 throw on receiving the reload message, before it answers (the reload
 * was posted to both workers; worker 0 rebuilds and answers), `1 throw` makes it throw from a timer.
 * One lab for the three cases; each starts its own sluice.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { labSkipReason, sleep, until } from './lab';
import { SLUICE_MAIN, SluiceProcess } from '../../src/lab/sluice';
import type { Proc } from '../../src/lab/lab';
import { rulesTool } from './steer-helpers';
import { sendSpread, startWithNodeArgs, steerYaml, workersGateway } from './fixtures/workers-lab';
import type { Gateway } from './gateway';

const FAULT = resolve(__dirname, 'fixtures/worker-fault.js');
const QUEUE = 47;
const PORT = 9203;
/** Exit this soon after the fault: well inside the 3 s a stop request to the dead thread would take. */
const PROMPT_MS = 2500;

let g: Gateway;
const skip = labSkipReason();

before(async () => {
  if (skip) return;
  g = await workersGateway('wdth');
  await rulesTool(g.lab, g.gw, 'apply', SluiceProcess.write(g.lab, 'rules.yaml', steerYaml({ queue: QUEUE, mark: '0x10', port: PORT, failOpen: true })));
});
after(async () => { await g?.lab.cleanup(); });

/** sluice with the fault file armed as `fault` (the worker acts on it when its moment comes). */
async function start(fault: string): Promise<{ sl: SluiceProcess; cli: (...args: string[]) => Proc }> {
  const trigger = g.lab.path('fault');
  writeFileSync(trigger, fault);
  const sl = await startWithNodeArgs(g.lab, g.gw, steerYaml({ queue: QUEUE, mark: '0x10', port: PORT, failOpen: true }), ['--require', FAULT],
    { SLUICE_TEST_FAULT_FILE: trigger });
  const cli = (...args: string[]): Proc => g.gw.spawn([process.execPath, SLUICE_MAIN, ...args, '-s', sl.socket]);
  return { sl, cli };
}

/** A real change for the reload to carry: the rule's mark. */
function changeConfig(sl: SluiceProcess): void {
  writeFileSync(sl.configFile, readFileSync(sl.configFile, 'utf8').replace('0x10/0xff', '0x20/0xff'));
}

const exitWithin = (p: Proc, ms: number): Promise<number | null | 'still running'> =>
  Promise.race([p.exited, sleep(ms).then(() => 'still running' as const)]);

/** Logged once at level fatal (60), naming worker 1 and the cause; stopped in order; no queue left bound. */
async function assertDied(sl: SluiceProcess, why: RegExp): Promise<void> {
  const fatal = sl.proc.output.split('\n').filter((l) => /"level":60/.test(l));
  assert.equal(fatal.length, 1, `one fatal line:\n${fatal.join('\n')}`);
  assert.ok(/worker thread died/.test(fatal[0]!) && /"worker":1/.test(fatal[0]!) && why.test(fatal[0]!), `the death is logged with the worker and why: ${fatal[0]}`);
  assert.match(sl.proc.output, /sluice stopped/);
  assert.doesNotMatch(sl.proc.output, /"msg":"reloaded"/, 'no reload is reported done');
  const bound = (await g.gw.sh('cat /proc/net/netfilter/nfnetlink_queue')).split('\n').map((l) => Number(l.trim().split(/\s+/)[0]));
  assert.ok(!bound.includes(QUEUE) && !bound.includes(QUEUE + 1), `no queue left bound: ${bound.join(',')}`);
}

test('worker 1 dies in the middle of `sluice reload`: sluice exits 70 at once; the client is told why and exits non-zero', { skip, timeout: 30000 }, async (t) => {
  const { sl, cli } = await start('1 reload');
  changeConfig(sl);
  const t0 = Date.now();
  const reload = cli('reload');
  const code = await exitWithin(sl.proc, 10000);
  const took = Date.now() - t0;
  const client = await exitWithin(reload, 10000);
  const clientTook = Date.now() - t0;
  t.diagnostic(`sluice exit ${String(code)} after ${took} ms; sluice reload exit ${String(client)} after ${clientTook} ms: ${reload.output.trim()}`);
  assert.equal(code, 70, sl.proc.output.slice(-2000));
  assert.ok(took < PROMPT_MS, `sluice exited ${took} ms after the reload was asked`);
  assert.ok(typeof client === 'number' && client !== 0, `sluice reload ends with a non-zero exit: ${String(client)}`);
  assert.ok(clientTook < PROMPT_MS + 500, `sluice reload ended ${clientTook} ms after it asked`);
  assert.match(reload.stderr, /worker 1 died/, 'the client is told why');
  assert.doesNotMatch(reload.stderr, /running config stays/, 'not "refused": sluice stopped');
  await assertDied(sl, /injected exception in worker 1 on reload/);
  assert.match(sl.proc.output, /"trigger":"control".*reload not completed|reload not completed.*"trigger":"control"/, 'the reload is logged as not completed');
});

test('worker 1 dies in the middle of a SIGHUP reload: sluice exits 70 at once, the death logged once', { skip, timeout: 30000 }, async (t) => {
  const { sl } = await start('1 reload');
  changeConfig(sl);
  const t0 = Date.now();
  process.kill(sl.proc.pid, 'SIGHUP'); // `ip netns exec` execs node: the same pid
  const code = await exitWithin(sl.proc, 10000);
  const took = Date.now() - t0;
  t.diagnostic(`sluice exit ${String(code)} after ${took} ms`);
  assert.equal(code, 70, sl.proc.output.slice(-2000));
  assert.ok(took < PROMPT_MS, `sluice exited ${took} ms after SIGHUP`);
  await assertDied(sl, /injected exception in worker 1 on reload/);
  assert.match(sl.proc.output, /"trigger":"SIGHUP".*reload not completed|reload not completed.*"trigger":"SIGHUP"/, 'the reload is logged as not completed');
});

test('worker 1 dies while `sluice trace` streams from both workers: sluice exits 70; trace ends at once with the reason, non-zero', { skip, timeout: 30000 }, async (t) => {
  const { sl, cli } = await start('none');
  const trace = cli('trace', '--json', '--filter', `proto=udp dport=${PORT}`);
  await until(async () => ((await sl.request('stats')) as { traces: number }).traces === 1, 10000, 'trace subscribed');
  const stream = sendSpread(g.client, PORT, 1500, 1000);
  // Both workers' records reach the client before the fault.
  await until(() => /"thread":"w0"/.test(trace.stdout) && /"thread":"w1"/.test(trace.stdout), 10000, 'records of both workers');
  const t0 = Date.now();
  writeFileSync(g.lab.path('fault'), '1 throw');
  const code = await exitWithin(sl.proc, 10000);
  const took = Date.now() - t0;
  const client = await exitWithin(trace, 10000);
  const clientTook = Date.now() - t0;
  await stream;
  t.diagnostic(`sluice exit ${String(code)} after ${took} ms; trace exit ${String(client)} after ${clientTook} ms, ${trace.stdout.split('\n').length - 1} lines: ${trace.stderr.trim()}`);
  assert.equal(code, 70, sl.proc.output.slice(-2000));
  assert.ok(took < PROMPT_MS, `sluice exited ${took} ms after the fault`);
  assert.ok(typeof client === 'number' && client !== 0, `sluice trace ends with a non-zero exit: ${String(client)}`);
  assert.ok(clientTook < PROMPT_MS + 500, `sluice trace ended ${clientTook} ms after the fault`);
  assert.match(trace.stderr, /sluice is stopping.*worker 1 died/, 'trace says why it ended');
  await assertDied(sl, /injected exception in worker 1/);
});
