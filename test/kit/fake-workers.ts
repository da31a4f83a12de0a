/**
 * workers: N in one thread on the fake binding (src/cli/workers.test.ts, trace-workers.test.ts):
 * WorkerCores on queue q+k each, their NatWorkerStage over the owner NatStage's shared table, joined
 * to the owner's engine through ForwardedSource with an event-loop hop each way (as postMessage).
 *
 * FakeWorkerThread: the same WorkerCore behind the face of a node Worker, for the main thread's
 * WorkerPool (src/cli/workers.ts) to start, talk to and lose (src/cli/worker-death.test.ts). Messages
 * each way take an event-loop turn; a test can look at each message before the worker does and
 * kill the thread at that exact point (die(): 'error', then 'exit', as a thread that threw).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Config } from '../../src/config/schema';
import type { Engine } from '../../src/engine/engine';
import { ForwardedSource } from '../../src/engine/forward';
import { FakeBinding } from '../../src/io/fake';
import type { Interfaces } from '../../src/io/interfaces';
import type { NatStage } from '../../src/nat/stage';
import type { Logger } from '../../src/obs/log';
import { WorkerCore, workerMessages, type FromWorker, type ToWorker, type WorkerInit } from '../../src/cli/worker-thread';
import type { WorkerThread } from '../../src/cli/workers';

/** onMessage: every message a worker posts other than its NAT forwards. */
export function fakeWorkers(n: number, cfg: Config, owner: Engine, nat: NatStage, log: Logger, interfaces: Interfaces,
  onMessage: (m: FromWorker) => void = () => {}): { cores: WorkerCore[]; fakes: FakeBinding[] } {
  const cores: WorkerCore[] = [];
  const fakes: FakeBinding[] = [];
  const q = cfg.queues[0]!.num;
  for (let index = 0; index < n; index++) {
    const fake = new FakeBinding();
    let source!: ForwardedSource;
    const post = (m: FromWorker): void => {
      if (m.t === 'fwd') setTimeout(() => { for (const p of m.ps) source.receive(p); }, 1);
      else onMessage(m);
    };
    const core = new WorkerCore({ index, cfg, nat: nat.state.sharedMemory(), stateDir: '/nonexistent' }, fake, log, post, interfaces);
    source = new ForwardedSource(owner, (r) => setTimeout(() => core.replies([r]), 1));
    source.addQueue(q + index, { defaultVerdict: 'accept', onInvalid: 'drop' });
    assert.deepEqual(core.openQueues(), [q + index]);
    cores.push(core);
    fakes.push(fake);
  }
  return { cores, fakes };
}

export class FakeWorkerThread extends EventEmitter implements WorkerThread {
  readonly fake = new FakeBinding();
  core: WorkerCore | null = null;
  /** Every message the main thread posted, in order, as the worker received it. */
  readonly received: ToWorker[] = [];
  /** Sees each message before the worker does; false: the worker never gets it (the test killed the thread, say). */
  intercept: (m: ToWorker) => boolean = () => true;
  private handle: ((m: ToWorker) => void) | null = null;
  private ended = false;

  constructor(init: WorkerInit, log: Logger, interfaces: Interfaces) {
    super();
    const post = (m: FromWorker): void => { setImmediate(() => { if (!this.ended) this.emit('message', m); }); };
    setImmediate(() => {
      try {
        this.core = new WorkerCore(init, this.fake, log, post, interfaces);
        this.handle = workerMessages(this.core, post);
        post({ t: 'ready', queues: this.core.openQueues() });
      } catch (e) {
        post({ t: 'fatal', error: (e as Error).message });
      }
    });
  }

  postMessage(m: ToWorker): void {
    setImmediate(() => {
      if (this.ended) return;
      this.received.push(m);
      if (this.intercept(m)) this.handle?.(m);
    });
  }

  /** The thread throws, nobody catches it: node emits 'error', then 'exit' with code 1. */
  die(err: Error): void {
    if (this.ended) return;
    this.end();
    this.emit('error', err);
    this.emit('exit', 1);
  }

  terminate(): Promise<number> {
    if (!this.ended) { this.end(); setImmediate(() => this.emit('exit', 1)); }
    return Promise.resolve(1);
  }

  private end(): void {
    this.ended = true;
    void this.core?.close();
  }
}
