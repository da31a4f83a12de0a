/**
 * A worker thread that dies while the main thread waits on its answer (WorkerPool, workers.ts), at
 * the exact point the namespace test (test/netns/worker-death.test.ts) cannot aim at: after the
 * reload (or trace start) was posted to every worker, before the dying one answers. The pool runs
 * FakeWorkerThreads (test/kit/fake-workers.ts): the real WorkerCore and message handling on the
 * fake binding. What waited on the dead worker fails at once with its number and cause, not when
 * the request's timer (60 s for a reload) runs out; onFatal hears the death once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema, type Config } from '../config/schema';
import { Engine } from '../engine/engine';
import { traceState, TraceSubscriber } from '../engine/trace';
import { Interfaces } from '../io/interfaces';
import { createLogger } from '../obs/log';
import { WorkerDiedError, WorkerPool } from './workers';
import type { ToWorker } from './worker-thread';
import { FakeWorkerThread } from '../../test/kit/fake-workers';

const steer = (dport: number) => ({ rules: [{ name: 'r', match: { proto: 'udp', dport }, action: { mark: '0x10/0xff', then: 'accept' } }] });
const cfgOf = (dport: number): Config => configSchema.parse({ workers: 2, queues: [{ num: 5 }], steer: steer(dport) });

/** A pool of two fake threads; fatal: every onFatal call. */
async function pool() {
  const log = createLogger('silent');
  const interfaces = Interfaces.fromList([]);
  const owner = new Engine({ held: { max: 100, timeoutMs: 5000, defaultVerdict: 'accept' }, interfaces });
  const threads: FakeWorkerThread[] = [];
  const fatal: [number, string][] = [];
  const p = new WorkerPool(cfgOf(500), owner, null, '/nonexistent', (i, why) => fatal.push([i, why]),
    (init) => { const th = new FakeWorkerThread(init, log, interfaces); threads.push(th); return th; });
  await p.start();
  return { p, threads, fatal };
}

/** Worker k throws on receiving a message of type t (the message was posted; it never answers). */
function dieOn(th: FakeWorkerThread, t: ToWorker['t'], k: number): void {
  th.intercept = (m) => {
    if (m.t !== t) return true;
    th.die(new Error(`injected: worker ${k} threw on ${t}`));
    return false;
  };
}

/** p, or a rejection saying it was still pending after ms (the bug: waiting on a dead thread's timer). */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer!: NodeJS.Timeout;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

test('worker 1 dies after the reload was posted to both, before it answers: the reload fails at once naming it and the cause; onFatal hears it once', async () => {
  const { p, threads, fatal } = await pool();
  dieOn(threads[1]!, 'reload', 1);
  const t0 = Date.now();
  await assert.rejects(within(p.reload(cfgOf(501), null), 2000),
    (e: Error) => e instanceof WorkerDiedError && /^worker 1 died \(Error: injected: worker 1 threw on reload\)$/.test(e.message));
  assert.ok(Date.now() - t0 < 1000, `failed after ${Date.now() - t0} ms`);
  assert.ok(threads.every((th) => th.received.some((m) => m.t === 'reload')), 'the reload was posted to both workers');
  assert.equal(fatal.length, 1, 'one death, heard once (its error, not also its exit)');
  assert.equal(fatal[0]![0], 1);
  assert.match(fatal[0]![1], /injected: worker 1 threw on reload/);

  // Asked after the death: refused at once, stats from the living worker only, stop does not wait on the dead.
  await assert.rejects(within(p.reload(cfgOf(502), null), 2000), /worker 1 died \(Error: injected/);
  assert.deepEqual((await within(p.stats(), 2000)).map((s) => s.index), [0]);
  const t1 = Date.now();
  await within(p.stop(), 2000);
  assert.ok(Date.now() - t1 < 1000, 'stop asked only the living worker');
  assert.equal(fatal.length, 1, 'stopping the survivor is no second death');
});

test('worker 0 dies while a trace start waits on it: the trace fails at once, the other worker stops tracing', async () => {
  const { p, threads, fatal } = await pool();
  dieOn(threads[0]!, 'trace', 0);
  const sub = new TraceSubscriber(null, 16, Infinity, traceState(true));
  await assert.rejects(within(p.trace(sub, ''), 2000), /worker 0 died \(Error: injected: worker 0 threw on trace\)/);
  assert.deepEqual(fatal.map(([i]) => i), [0]);
  // The pool took the trace back from the worker that started it (untrace), so it costs nothing there.
  await within((async () => { while (!threads[1]!.received.some((m) => m.t === 'untrace')) await new Promise((r) => setImmediate(r)); })(), 2000);
  assert.equal(threads[1]!.core!.traces.subscribers, 0);
  await p.stop();
});

test('a death while a stats request waits (the second worker answers) fails it at once too', async () => {
  const { p, threads } = await pool();
  dieOn(threads[1]!, 'stats', 1);
  await assert.rejects(within(p.stats(), 2000), /worker 1 died/);
  await p.stop();
});
