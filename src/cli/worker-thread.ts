/**
 * One worker thread of `workers: N` (N > 1). It opens its share of the queues (queue q + its index
 * for every configured queue q, and one queue of every multi-queue TUN device), runs the whole pipeline on its own batches with its own compiled
 * policy/steer/DHCP stages, and a NatWorkerStage over the owner's shared SA table in place of the NAT
 * (src/nat/remote.ts). Packets the NAT fast path cannot decide go to the main thread (the NAT owner)
 * and come back as OwnerReply messages. Counters and stage stats are sent to the main thread on
 * request (runtime aggregates them for `sluice stats` and metrics).
 *
 * WorkerCore holds everything but the thread plumbing, so the in-process benchmark runs the same code.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { Config } from '../config/schema';
import { Engine } from '../engine/engine';
import type { ForwardedPacket, OwnerReply } from '../engine/forward';
import type { Stage } from '../engine/stage';
import { V_ACCEPT, V_DROP } from '../io/batch-layout';
import { loadBinding, type NativeBinding } from '../io/binding';
import { Injector } from '../io/inject';
import { Interfaces } from '../io/interfaces';
import { NfQueue } from '../io/nfqueue';
import { Tun } from '../io/tun';
import { NatWorkerStage } from '../nat/remote';
import type { SharedNatMemory } from '../nat/shared';
import { createLogger, type Logger } from '../obs/log';
import { buildStages, buildStagesSliced, type CompiledImages } from './pipeline';
import type { TraceRecord } from '../engine/trace';
import { WorkerTraces, type TraceStart } from './trace-workers';

export interface WorkerInit {
  index: number;
  cfg: Config;
  /** The owner's shared NAT state (null: no NAT configured). */
  nat: SharedNatMemory | null;
  stateDir: string;
  /** Sections the main thread compiled once (the steer classifier): run from these, not compiled again (absent: compiled here). */
  images?: CompiledImages;
}

/** What a worker reports for `sluice stats` and metrics. */
export interface WorkerStats {
  index: number;
  queues: ({ queue: number } & Record<string, unknown>)[];
  /** This worker's queue of each TUN device. */
  tuns: ({ tun: string } & Record<string, unknown>)[];
  held: number;
  stages: Record<string, { decisions: Record<string, number>; state?: Record<string, unknown> }>;
  counters: { name: string; help: string; drop: boolean; value: number }[];
  drops: { name: string; value: number }[];
}

export type ToWorker =
  | { t: 'replies'; rs: OwnerReply[] }
  | { t: 'stats'; id: number }
  | { t: 'reload'; id: number; cfg: Config; nat: SharedNatMemory | null; images: CompiledImages }
  | { t: 'stop'; id: number }
  | { t: 'trace'; id: number; trace: TraceStart }
  | { t: 'untrace'; sub: number };

export type FromWorker =
  | { t: 'ready'; queues: number[] }
  | { t: 'fwd'; ps: ForwardedPacket[] }
  | { t: 'stats'; id: number; data: WorkerStats }
  | { t: 'done'; id: number; error?: string }
  | { t: 'fatal'; error: string }
  | { t: 'traced'; sub: number; recs: TraceRecord[] };

/** The config a worker builds its own stages from: everything but the NAT (NatWorkerStage stands in). */
function withoutNat(cfg: Config): Config {
  return { ...cfg, nat: undefined };
}

export class WorkerCore {
  readonly engine: Engine;
  readonly queues: NfQueue[] = [];
  readonly tuns: Tun[] = [];
  private stagesByArea = new Map<string, Stage>();
  private cfg: Config;
  private natStage: NatWorkerStage | null = null;
  private natMem: SharedNatMemory | null;
  private outbox: ForwardedPacket[] = [];
  /** `sluice trace` clients (trace-workers.ts). */
  readonly traces: WorkerTraces;

  constructor(private readonly init: WorkerInit, private readonly binding: NativeBinding, readonly log: Logger,
    private readonly post: (m: FromWorker) => void, interfaces: Interfaces, injector?: Injector) {
    this.cfg = init.cfg;
    this.natMem = init.nat;
    const cfg = init.cfg;
    this.engine = new Engine({
      held: { max: cfg.held.max, timeoutMs: cfg.held.timeout_ms, defaultVerdict: cfg.held.default_verdict },
      interfaces, injector, log,
    });
    this.traces = new WorkerTraces(this.engine, interfaces, init.index, (sub, recs) => post({ t: 'traced', sub, recs }));
    this.install(buildStages(withoutNat(cfg), { log, stateDir: init.stateDir, images: init.images }, { cfg: withoutNat(cfg), stages: this.stagesByArea }));
  }

  /** Opens this worker's queues: q + index for every configured queue q. */
  openQueues(): number[] {
    for (const q of this.cfg.queues) {
      const num = q.num + this.init.index;
      let source = -1;
      const queue = NfQueue.open({
        queue: num, copyRange: Math.min(q.copy_range, 65531), maxLen: q.max_len, failOpen: q.fail_open, gso: q.gso,
        rcvbufBytes: q.rcvbuf, batchSize: q.batch,
        defaultVerdict: q.default_verdict === 'accept' ? V_ACCEPT : V_DROP, invalidVerdict: q.on_invalid === 'accept' ? V_ACCEPT : V_DROP,
      }, (batch) => this.engine.handleBatch(source, batch), this.binding);
      source = this.engine.addSource(queue, num, { defaultVerdict: q.default_verdict, onInvalid: q.on_invalid });
      this.queues.push(queue);
    }
    // One queue of each TUN device per worker (IFF_MULTI_QUEUE): the kernel spreads flows over them.
    this.cfg.tun.forEach((t, i) => {
      let source = -1;
      const tun = Tun.open({ name: t.name, batchSize: t.batch, multiQueue: true }, (batch) => this.engine.handleBatch(source, batch), this.binding);
      source = this.engine.addSource(tun, t.source_id ?? 65536 + i, { defaultVerdict: t.default_verdict, onInvalid: t.on_invalid, releaseNeedsPayload: true });
      this.tuns.push(tun);
    });
    return this.queues.map((q) => q.queue);
  }

  /** The NAT stage stands where the NAT area sits in the pipeline order (policy → steer → nat → dhcp). */
  private install(built: { key: string; stage: Stage }[]): void {
    const byArea = new Map(built.map(({ key, stage }) => [key, stage]));
    for (const old of this.stagesByArea.values()) if (![...byArea.values()].includes(old)) void old.close?.();
    this.stagesByArea = byArea;
    const stages = built.map((b) => b.stage);
    const natCfg = this.cfg.nat && this.cfg.nat.enabled ? this.cfg.nat : null;
    if (natCfg && this.natMem) {
      if (!this.natStage) this.natStage = new NatWorkerStage(natCfg, this.natMem, (p) => this.forward(p));
      const at = built.findIndex((b) => b.key === 'dhcp');
      stages.splice(at < 0 ? stages.length : at, 0, this.natStage);
    } else {
      this.natStage = null;
    }
    this.engine.setPipeline(stages);
  }

  private forward(p: ForwardedPacket): void {
    if (this.outbox.length === 0) queueMicrotask(() => this.flush());
    this.outbox.push(p);
  }

  private flush(): void {
    if (this.outbox.length === 0) return;
    const ps = this.outbox;
    this.outbox = [];
    this.post({ t: 'fwd', ps });
  }

  replies(rs: OwnerReply[]): void {
    for (const r of rs) this.natStage?.reply(r);
  }

  /** New stages from cfg (the main thread's new images); they replace the running ones between two batches. */
  async reload(cfg: Config, nat: SharedNatMemory | null, images?: CompiledImages): Promise<void> {
    const previous = this.cfg;
    const built = await buildStagesSliced(withoutNat(cfg), { log: this.log, stateDir: this.init.stateDir, images }, { cfg: withoutNat(previous), stages: this.stagesByArea });
    this.cfg = { ...cfg, queues: previous.queues };
    // A NAT whose section did not change keeps the same shared memory: the running stage stays.
    // (Held forwards of a replaced NAT stage get its timeout verdict, drop, as a NAT swap does in one thread.)
    if (nat?.id !== this.natMem?.id || JSON.stringify(cfg.nat) !== JSON.stringify(previous.nat)) {
      this.natStage?.close(); // its packet counts into the table it counted for
      this.natStage = null;
    }
    this.natMem = nat;
    this.install(built);
  }

  stats(): WorkerStats {
    const decisions = this.engine.stageCounts();
    const stages: WorkerStats['stages'] = {};
    for (const s of this.engine.pipeline) stages[s.name] = { decisions: decisions[s.name] ?? {}, state: s.stats?.() as Record<string, unknown> | undefined };
    return {
      index: this.init.index,
      queues: this.queues.map((q) => ({ queue: q.queue, ...q.stats() })),
      tuns: this.tuns.map((t) => ({ tun: t.name, ...t.stats() })),
      held: this.engine.held.size,
      stages,
      counters: this.engine.counters.snapshot(true),
      drops: this.engine.counters.dropSnapshot(),
    };
  }

  async close(): Promise<void> {
    this.traces.stopAll();
    await this.engine.close();
    for (const q of this.queues) q.close();
    for (const t of this.tuns) t.close();
  }
}

/** The thread entry: WorkerCore on the real addon, talking to the main thread over parentPort. */
async function main(port: MessagePort, init: WorkerInit): Promise<void> {
  const log = createLogger(init.cfg.log.level).child({ worker: init.index });
  const post = (m: FromWorker): void => port.postMessage(m);
  let core: WorkerCore;
  const interfaces = new Interfaces();
  let injector: Injector | undefined;
  try {
    const binding = loadBinding();
    try {
      interfaces.track(binding);
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'rtnetlink tracking unavailable: interfaces re-read from /sys every 5 s');
      interfaces.refresh();
    }
    injector = new Injector();
    core = new WorkerCore(init, binding, log, post, interfaces, injector);
    const queues = core.openQueues();
    if (core.tuns.length > 0) interfaces.refresh(); // the TUN device the first worker created
    post({ t: 'ready', queues });
  } catch (e) {
    post({ t: 'fatal', error: (e as Error).message });
    interfaces.stopTracking();
    injector?.close();
    return;
  }
  port.on('message', workerMessages(core, post, () => { injector?.close(); interfaces.stopTracking(); }));
}

/**
 * How a worker answers the main thread's messages (the thread entry above, and the unit tests' fake
 * thread, test/kit/fake-workers.ts). closeRest: what the thread opened besides the core, closed on stop.
 */
export function workerMessages(core: WorkerCore, post: (m: FromWorker) => void, closeRest: () => void = () => {}): (m: ToWorker) => void {
  return (m) => {
    switch (m.t) {
      case 'replies': core.replies(m.rs); break;
      case 'stats': post({ t: 'stats', id: m.id, data: core.stats() }); break;
      case 'reload':
        core.reload(m.cfg, m.nat, m.images).then(() => post({ t: 'done', id: m.id }), (e: Error) => post({ t: 'done', id: m.id, error: e.message }));
        break;
      case 'trace':
        try { core.traces.start(m.trace); post({ t: 'done', id: m.id }); } catch (e) { post({ t: 'done', id: m.id, error: (e as Error).message }); }
        break;
      case 'untrace': core.traces.stop(m.sub); break;
      case 'stop':
        core.close().finally(() => {
          closeRest();
          post({ t: 'done', id: m.id });
        });
        break;
    }
  };
}

if (parentPort && (workerData as { sluiceWorker?: boolean } | null)?.sluiceWorker) {
  void main(parentPort, (workerData as { init: WorkerInit }).init);
}
