/**
 * `sluice trace` / `sluice tap` with `workers: N` (N > 1): each worker thread traces its own batches
 * and the main thread, which owns the control socket, merges the records to the client.
 *
 *   main: client subscribes ─▶ TraceSubscriber (bounds in a SharedArrayBuffer) + `trace` message
 *   worker: WorkerTraces.start(): compiles the filter, attaches a subscriber over the same bounds
 *           to its engine's tracer; records it takes are posted to main after the batch
 *   main: WorkerPool routes them into the client's subscriber; traceChunks() streams them
 *   main: client leaves ─▶ `untrace`: the worker's tracer detaches (zero cost again)
 * The filter runs in the worker, so packets nobody wants are never copied or posted; the client's
 * queue bound (max), its count and its missed-packet count are one set of counters shared by every
 * thread (trace.ts traceState), so a slow client costs each worker only the filter test, as with
 * one thread. A worker learns that someone traces by the `trace` message; until then its engine has
 * no tracer.
 * Failure: a record a worker cannot post (a value structured clone refuses) is counted as missed.
 */
import type { Engine } from '../engine/engine';
import { Tracer, TraceSubscriber, type TraceRecord } from '../engine/trace';
import { compileFilter } from '../engine/trace-filter';
import type { Interfaces } from '../io/interfaces';

/** What a worker needs to trace for one client. */
export interface TraceStart {
  /** The main thread's number for this client's trace. */
  sub: number;
  filter: string;
  max: number;
  count: number;
  /** traceState(true): shared with the main thread and the other workers. */
  state: Int32Array;
}

/** Records a worker sends in one message at most (a busy trace sends several). */
const POST_MAX = 256;

interface Running { sub: TraceSubscriber; closeFilter: () => void; stopped: boolean }

/** A worker's side: its engine's tracer and one subscriber per client tracing. */
export class WorkerTraces {
  private readonly tracer: Tracer;
  private readonly running = new Map<number, Running>();

  constructor(private readonly engine: Engine, private readonly interfaces: Interfaces, index: number,
    private readonly post: (sub: number, recs: TraceRecord[]) => void) {
    this.tracer = new Tracer(engine, `w${index}`);
  }

  get subscribers(): number { return this.tracer.subscribers; }

  /** Throws FilterError for a filter the main thread did not already refuse (it compiles it first). */
  start(t: TraceStart): void {
    this.stop(t.sub);
    const f = compileFilter(t.filter, this.interfaces);
    const r: Running = { sub: new TraceSubscriber(f.filter, t.max, t.count, t.state), closeFilter: f.close, stopped: false };
    this.running.set(t.sub, r);
    this.tracer.attach(r.sub);
    void this.pump(t.sub, r);
  }

  stop(sub: number): void {
    const r = this.running.get(sub);
    if (!r) return;
    this.running.delete(sub);
    r.stopped = true;
    this.tracer.unsubscribe(r.sub);
    r.closeFilter();
  }

  stopAll(): void {
    for (const sub of [...this.running.keys()]) this.stop(sub);
  }

  /** Posts records as they are taken: wait() wakes after the batch that recorded them. */
  private async pump(id: number, r: Running): Promise<void> {
    while (!r.stopped) {
      await r.sub.wait(1000);
      if (r.stopped) return;
      while (r.sub.records.length > 0) this.send(id, r.sub, r.sub.records.splice(0, POST_MAX));
    }
  }

  private send(id: number, sub: TraceSubscriber, recs: TraceRecord[]): void {
    for (const rec of recs) {
      for (const s of rec.steps) if (s.verdict === 2) s.reasonName = this.engine.counters.info(s.reason)?.name ?? `reason${s.reason}`;
    }
    try {
      this.post(id, recs);
    } catch {
      sub.cancel(recs.length);
    }
  }
}

/** The main thread's side, over the worker pool (workers.ts implements it). */
export interface TraceFanout {
  /** Has every worker trace into `sub` with `filter`; resolves once all do. Returns the stop function. */
  trace(sub: TraceSubscriber, filter: string): Promise<() => void>;
}
