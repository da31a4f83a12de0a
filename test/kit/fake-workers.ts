/**
 * workers: N in one thread on the fake binding (src/cli/workers.test.ts, trace-workers.test.ts):
 * WorkerCores on queue q+k each, their NatWorkerStage over the owner NatStage's shared table, joined
 * to the owner's engine through ForwardedSource with an event-loop hop each way (as postMessage).
 */
import assert from 'node:assert/strict';
import type { Config } from '../../src/config/schema';
import type { Engine } from '../../src/engine/engine';
import { ForwardedSource } from '../../src/engine/forward';
import { FakeBinding } from '../../src/io/fake';
import type { Interfaces } from '../../src/io/interfaces';
import type { NatStage } from '../../src/nat/stage';
import type { Logger } from '../../src/obs/log';
import { WorkerCore, type FromWorker } from '../../src/cli/worker-thread';

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
