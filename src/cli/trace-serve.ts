/**
 * The running side of `sluice trace` / `sluice tap`: the control command `trace` subscribes to the
 * engine's tracer with the client's filter and streams its records as JSON (src/obs/trace-format.ts).
 * With `workers: N` the workers trace too and their records join the same stream (trace-workers.ts);
 * this thread's engine (the NAT owner) then traces the packets the workers forward to it.
 */
import type { Engine } from '../engine/engine';
import { traceChunks, traceState, TraceSubscriber, type Tracer } from '../engine/trace';
import { compileFilter } from '../engine/trace-filter';
import type { Interfaces } from '../io/interfaces';
import { traceJson, type TraceNames } from '../obs/trace-format';
import type { TraceFanout } from './trace-workers';

/** Most subscribers at once (each costs a filter test per packet while it runs). */
export const MAX_TRACERS = 4;

export function traceNames(engine: Engine, interfaces: Interfaces): TraceNames {
  return { ifname: (i) => interfaces.nameOf(i), reason: (id) => engine.counters.info(id)?.name ?? `reason${id}` };
}

/** args: filter (one-line selector), count (packets, default unlimited), bytes (tap), layers (decode JSON), max (queue). */
export async function serveTrace(engine: Engine, tracer: Tracer, interfaces: Interfaces, args: Record<string, unknown>,
  workers?: TraceFanout): Promise<AsyncIterable<unknown>> {
  if (tracer.subscribers >= MAX_TRACERS) throw new Error(`${MAX_TRACERS} traces are running already; stop one first`);
  const count = args.count === undefined ? Infinity : Number(args.count);
  if (!(count > 0)) throw new Error(`count: a positive number of packets, not ${String(args.count)}`);
  const max = args.max === undefined ? 1024 : Number(args.max);
  if (!Number.isInteger(max) || max < 1 || max > 65536) throw new Error('max: 1..65536 queued packets');
  const filter = typeof args.filter === 'string' ? args.filter : '';
  const f = compileFilter(filter, interfaces);
  const sub = tracer.attach(new TraceSubscriber(f.filter, max, count, traceState(workers !== undefined)));
  let stopWorkers = (): void => {};
  if (workers) {
    try {
      stopWorkers = await workers.trace(sub, filter);
    } catch (e) {
      tracer.unsubscribe(sub);
      f.close();
      throw e;
    }
  }
  const names = traceNames(engine, interfaces);
  const bytes = args.bytes === true, layers = args.layers === true;
  return traceChunks(tracer, sub, (r) => traceJson(r, names, bytes, layers), () => { stopWorkers(); f.close(); });
}
