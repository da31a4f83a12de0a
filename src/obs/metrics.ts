/**
 * Prometheus text endpoint. Values are read from the engine's counters at scrape time, so the hot
 * path only bumps typed-array slots.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { splitListen } from '../config/core';

export interface MetricsSource {
  /** Counter name (dotted) → value. */
  counters(): { name: string; help: string; value: number }[];
  /** Gauges: name → value (held packets, SAs...). */
  gauges(): { name: string; help: string; value: number }[];
}

const metricName = (dotted: string): string => `sluice_${dotted.replace(/[^a-zA-Z0-9_]/g, '_')}`;

export function metricsRegistry(source: MetricsSource): Registry {
  const registry = new Registry();
  const known = new Set<string>();
  // prom-client's collect() hooks run per scrape; new names (registered by a reloaded stage) appear
  // on the next scrape through this refresh.
  const refresh = (): void => {
    for (const c of source.counters()) {
      const name = `${metricName(c.name)}_total`;
      if (known.has(name)) continue;
      known.add(name);
      const read = (): number => source.counters().find((x) => x.name === c.name)?.value ?? 0;
      new Counter({ name, help: c.help, registers: [registry], collect() { this.reset(); this.inc(read()); } });
    }
    for (const g of source.gauges()) {
      const name = metricName(g.name);
      if (known.has(name)) continue;
      known.add(name);
      const read = (): number => source.gauges().find((x) => x.name === g.name)?.value ?? 0;
      new Gauge({ name, help: g.help, registers: [registry], collect() { this.set(read()); } });
    }
  };
  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => { refresh(); return metrics(); };
  return registry;
}

export function serveMetrics(listen: string, registry: Registry): Promise<Server> {
  const hp = splitListen(listen);
  if (!hp) return Promise.reject(new Error(`metrics.listen ${listen}: host:port or [v6]:port`));
  const { host, port } = hp;
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('see /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(`${err.message}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
