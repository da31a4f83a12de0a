/**
 * The running side of `sluice trace` / `sluice tap`: the control command `trace` subscribes to the
 * engine's tracer with the client's filter and streams its records as JSON (src/obs/trace-format.ts).
 */
import type { Engine } from '../engine/engine';
import { traceChunks, type Tracer } from '../engine/trace';
import { compileFilter } from '../engine/trace-filter';
import type { Interfaces } from '../io/interfaces';
import { traceJson, type TraceNames } from '../obs/trace-format';

/** Most subscribers at once (each costs a filter test per packet while it runs). */
export const MAX_TRACERS = 4;

export function traceNames(engine: Engine, interfaces: Interfaces): TraceNames {
  return { ifname: (i) => interfaces.nameOf(i), reason: (id) => engine.counters.info(id)?.name ?? `reason${id}` };
}

/** args: filter (one-line selector), count (packets, default unlimited), bytes (tap), layers (decode JSON), max (queue). */
export function serveTrace(engine: Engine, tracer: Tracer, interfaces: Interfaces, args: Record<string, unknown>): AsyncIterable<unknown> {
  if (tracer.subscribers >= MAX_TRACERS) throw new Error(`${MAX_TRACERS} traces are running already; stop one first`);
  const count = args.count === undefined ? Infinity : Number(args.count);
  if (!(count > 0)) throw new Error(`count: a positive number of packets, not ${String(args.count)}`);
  const max = args.max === undefined ? 1024 : Number(args.max);
  if (!Number.isInteger(max) || max < 1 || max > 65536) throw new Error('max: 1..65536 queued packets');
  const f = compileFilter(typeof args.filter === 'string' ? args.filter : '', interfaces);
  const sub = tracer.subscribe(f.filter, { count, max });
  const names = traceNames(engine, interfaces);
  const bytes = args.bytes === true, layers = args.layers === true;
  return traceChunks(tracer, sub, (r) => traceJson(r, names, bytes, layers), () => f.close());
}
