/**
 * The main thread's side of `workers: N` (N > 1): starts the worker threads (worker-thread.ts),
 * answers their forwarded NAT packets through the owner's engine (engine/forward.ts), gathers their
 * stats, passes reloads on, and stops them. A worker that dies takes the process with it (onFatal):
 * a gateway deciding only part of its queues is worse than one that restarts. Whatever waited on
 * the dead thread (a reload, a trace start, stats) fails at once with the cause, never on a timer:
 * a reload the dead worker will not answer must not keep its control client waiting.
 */
import type { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import type { Config } from '../config/schema';
import type { Engine } from '../engine/engine';
import { ForwardedSource, type OwnerReply } from '../engine/forward';
import type { SharedNatMemory } from '../nat/shared';
import type { TraceSubscriber } from '../engine/trace';
import type { TraceFanout } from './trace-workers';
import type { FromWorker, ToWorker, WorkerInit, WorkerStats } from './worker-thread';
import { compileImages, type CompiledImages } from './pipeline';

/** How long a stopping worker may take to decide its held packets and close its queues. */
const STOP_TIMEOUT_MS = 3000;
/** Worker stats kept for metrics scrapes (which must answer synchronously) are refreshed this often. */
const STATS_REFRESH_MS = 1000;

/**
 * What the pool needs of a thread: node's Worker, or a fake one in the unit tests
 * (test/kit/fake-workers.ts). Events: 'message' (FromWorker), 'error' (Error), 'exit' (code).
 */
export interface WorkerThread extends EventEmitter {
  postMessage(m: ToWorker): void;
  terminate(): Promise<number>;
}

/** A thread running worker-thread.ts over the real addon. */
export function spawnWorkerThread(init: WorkerInit): WorkerThread {
  return new Worker(join(__dirname, 'worker-thread.js'), { workerData: { sluiceWorker: true, init } });
}

/** A request to a worker that died before answering (or was dead when asked). */
export class WorkerDiedError extends Error {}

interface Slot {
  index: number;
  worker: WorkerThread;
  source: ForwardedSource;
  outbox: OwnerReply[];
  queues: number[];
  exited: boolean;
  /** Why it ended (the first cause), once it has. */
  death: string | null;
}

export class WorkerPool implements TraceFanout {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private readonly waiting = new Map<number, { slot: Slot; resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private stopping = false;
  private started = false;
  private refresh: NodeJS.Timeout | null = null;
  /** `sluice trace` clients by number: the workers' records go to their subscriber (trace-workers.ts). */
  private readonly traces = new Map<number, TraceSubscriber>();
  private nextTrace = 1;
  /** The last stats of each worker (metrics). */
  latest: WorkerStats[] = [];
  /** What the workers run of the current config, compiled once here (the steer classifier). */
  private images: CompiledImages = {};
  /** The config the images were compiled from. */
  private reloadedCfg: Config;

  constructor(private readonly cfg: Config, private readonly owner: Engine, private nat: SharedNatMemory | null,
    private readonly stateDir: string, private readonly onFatal: (index: number, why: string) => void,
    private readonly spawn: (init: WorkerInit) => WorkerThread = spawnWorkerThread) {
    this.reloadedCfg = cfg;
  }

  /** Starts every worker and resolves once all have bound their queues; rejects (all stopped) if one cannot. */
  async start(): Promise<void> {
    const n = this.cfg.workers;
    const ready: Promise<void>[] = [];
    this.images = await compileImages(this.cfg);
    for (let index = 0; index < n; index++) {
      const init: WorkerInit = { index, cfg: this.cfg, nat: this.nat, stateDir: this.stateDir, images: this.images };
      const worker = this.spawn(init);
      const slot: Slot = { index, worker, outbox: [], queues: [], exited: false, death: null,
        source: new ForwardedSource(this.owner, (r) => this.reply(slot, r)) };
      for (const q of this.cfg.queues) {
        slot.source.addQueue(q.num + index, { defaultVerdict: q.default_verdict, onInvalid: q.on_invalid });
      }
      this.slots.push(slot);
      ready.push(new Promise<void>((resolve, reject) => {
        const onStart = (m: FromWorker): void => {
          if (m.t === 'ready') { slot.queues = m.queues; worker.off('message', onStart); resolve(); }
          if (m.t === 'fatal') { worker.off('message', onStart); reject(new Error(`worker ${index}: ${m.error}`)); }
        };
        worker.on('message', onStart);
        worker.once('exit', (code) => reject(new Error(`worker ${index} exited (code ${code}) before its queues were bound`)));
      }));
      worker.on('message', (m: FromWorker) => this.onMessage(slot, m));
      // A thread that threw or ran out of memory emits 'error', then 'exit': it answers nothing from
      // the first, so stop() must not wait for it, and onFatal hears the first cause only. onFatal
      // first (the runtime knows it is stopping, and why), then what waited on the thread fails.
      const died = (why: string): void => {
        if (slot.exited) return;
        slot.exited = true;
        slot.death = why.split('\n')[0]!;
        if (this.started && !this.stopping) this.onFatal(index, why);
        for (const [id, w] of this.waiting) if (w.slot === slot) this.fail(id, this.deadError(slot));
      };
      worker.on('error', (e) => died(e.stack ?? e.message));
      worker.on('exit', (code) => died(`exited with code ${code}`));
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.started = true;
    this.refresh = setInterval(() => { this.stats().then((s) => { this.latest = s; }, () => {}); }, STATS_REFRESH_MS);
    this.refresh.unref();
  }

  get workerQueues(): number[][] {
    return this.slots.map((s) => s.queues);
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    switch (m.t) {
      case 'fwd': for (const p of m.ps) slot.source.receive(p); break;
      case 'stats': this.settle(m.id, m.data); break;
      case 'traced': { const sub = this.traces.get(m.sub); if (sub) for (const r of m.recs) sub.push(r); break; }
      case 'done': if (m.error) this.fail(m.id, new Error(`worker ${slot.index}: ${m.error}`)); else this.settle(m.id, null); break;
      default: break;
    }
  }

  /** Owner answers leave in one message per worker per turn of the event loop. */
  private reply(slot: Slot, r: OwnerReply): void {
    if (slot.exited) return;
    if (slot.outbox.length === 0) queueMicrotask(() => this.flush(slot));
    slot.outbox.push(r);
  }

  private flush(slot: Slot): void {
    if (slot.outbox.length === 0 || slot.exited) return;
    const rs = slot.outbox;
    slot.outbox = [];
    this.send(slot, { t: 'replies', rs });
  }

  private send(slot: Slot, m: ToWorker): void {
    slot.worker.postMessage(m);
  }

  private deadError(slot: Slot): WorkerDiedError {
    return new WorkerDiedError(`worker ${slot.index} died (${slot.death ?? 'ended'})`);
  }

  /** Settles when the worker answers, fails at once if it dies first (or is dead), or after timeoutMs. */
  private request<T>(slot: Slot, make: (id: number) => ToWorker, timeoutMs = 10000): Promise<T> {
    if (slot.exited) return Promise.reject(this.deadError(slot));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(id, new Error(`worker ${slot.index} did not answer within ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
      this.waiting.set(id, {
        slot,
        resolve: (v) => { clearTimeout(timer); resolve(v as T); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.send(slot, make(id));
    });
  }

  private settle(id: number, v: unknown): void {
    const w = this.waiting.get(id);
    this.waiting.delete(id);
    w?.resolve(v);
  }

  private fail(id: number, e: Error): void {
    const w = this.waiting.get(id);
    this.waiting.delete(id);
    w?.reject(e);
  }

  stats(): Promise<WorkerStats[]> {
    return Promise.all(this.slots.filter((s) => !s.exited).map((s) => this.request<WorkerStats>(s, (id) => ({ t: 'stats', id }))));
  }

  /** Every worker traces into sub (its filter compiled there); the returned function stops them all. */
  async trace(sub: TraceSubscriber, filter: string): Promise<() => void> {
    const id = this.nextTrace++;
    this.traces.set(id, sub);
    const stop = (): void => {
      this.traces.delete(id);
      for (const s of this.slots) if (!s.exited) this.send(s, { t: 'untrace', sub: id });
    };
    const trace = { sub: id, filter, max: sub.max, count: sub.count, state: sub.state };
    try {
      await Promise.all(this.slots.filter((s) => !s.exited).map((s) => this.request<void>(s, (rid) => ({ t: 'trace', id: rid, trace }))));
    } catch (e) {
      stop();
      throw e;
    }
    return stop;
  }

  /** Every worker rebuilds its stages from cfg (unchanged sections keep theirs); nat: the owner's shared NAT now. */
  async reload(cfg: Config, nat: SharedNatMemory | null): Promise<void> {
    if (this.stopping) throw new Error('the worker threads are stopping');
    this.nat = nat;
    // Compiled once here; a section that did not change keeps its image (and the workers their stage).
    const images = await compileImages(cfg, { cfg: this.reloadedCfg, images: this.images });
    await Promise.all(this.slots.map((s) => this.request<void>(s, (id) => ({ t: 'reload', id, cfg, nat, images }), 60000)));
    this.images = images;
    this.reloadedCfg = cfg;
  }

  /** Workers decide their held packets and close their queues, then end. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.refresh) clearInterval(this.refresh);
    await Promise.all(this.slots.map(async (s) => {
      if (s.exited) return;
      try {
        await this.request<void>(s, (id) => ({ t: 'stop', id }), STOP_TIMEOUT_MS);
      } catch { /* terminated below */ }
      await s.worker.terminate();
    }));
  }
}
