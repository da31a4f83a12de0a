/**
 * `sluice trace --filter EXPR`: sluice's own selector language (the one steer rules and policies
 * use, src/select/selector.ts) written on one line as `field=value` words, all of which must match:
 *   proto=esp dst=203.0.113.0/24          in=eth0,eth1 dport=500,4500          !dport=22 kind=ike
 * A list (comma) means any of its values; `!field=...` (or `not.field=...`) negates one field, like
 * `not:` in a config. Every selector field works (hook, in, out, src, dst, proto, sport, dport,
 * icmp_type, dhcp_type, ike_exchange, esp_spi, kind, mark, length, queue, ip_version); named sets
 * (@name) do not, as a trace has no config section of its own.
 * Why not pcap-filter: this matches what the stages match on (hook, interfaces, mark, queue, IKE
 * exchange, SPI, DHCP type) with the classifier already in the engine, with no new native code
 * (pcap_compile would need libpcap in the addon and a BPF interpreter in JavaScript).
 */
import { Matcher } from '../select/match';
import { normalizeSelector, selectorSchema, type SelectorConfig } from '../select/selector';
import type { Interfaces } from '../io/interfaces';
import type { TraceFilter } from './trace';

export class FilterError extends Error {}

const NUM = /^(\d+)$/;

function value(v: string): string | number {
  return NUM.test(v) ? Number(v) : v;
}

/** Parses the one-line form into a selector object (throws FilterError with the offending word). */
export function parseFilterText(text: string): SelectorConfig {
  const pos: Record<string, unknown> = {};
  const not: Record<string, unknown> = {};
  for (const word of text.trim().split(/\s+/).filter(Boolean)) {
    const eq = word.indexOf('=');
    if (eq <= 0 || eq === word.length - 1) throw new FilterError(`filter: "${word}" is not field=value (e.g. proto=esp, dport=500,4500, !src=10.0.0.0/8)`);
    let key = word.slice(0, eq);
    let side = pos;
    if (key.startsWith('!')) { key = key.slice(1); side = not; } else if (key.startsWith('not.')) { key = key.slice(4); side = not; }
    if (key in side) throw new FilterError(`filter: ${key} given twice (use a list: ${key}=a,b)`);
    const vals = word.slice(eq + 1).split(',').map(value);
    if (vals.some((v) => typeof v === 'string' && v.startsWith('@'))) throw new FilterError(`filter: named sets (${word}) are not available in a trace filter`);
    side[key] = vals.length === 1 ? vals[0] : vals;
  }
  const obj = Object.keys(not).length ? { ...pos, not } : pos;
  const r = selectorSchema.safeParse(obj);
  if (!r.success) {
    const where = (i: { path: PropertyKey[]; message: string }): string => {
      const path = i.path.map(String).join('.');
      return !path || i.message.startsWith(`${String(i.path[i.path.length - 1])}:`) ? i.message : `${path}: ${i.message}`;
    };
    throw new FilterError(`filter: ${r.error.issues.map(where).join('; ')}`);
  }
  return r.data;
}

/**
 * Compiles the one-line form into a filter over the engine's packet view ('' matches everything);
 * close() lets go of the interface table's refresh listener when the trace ends.
 */
export function compileFilter(text: string, interfaces: Interfaces): { filter: TraceFilter | null; close(): void } {
  if (text.trim() === '') return { filter: null, close: () => {} };
  const m = new Matcher([normalizeSelector(parseFilterText(text))]);
  let off = (): void => {};
  m.bind({ nameOf: (i) => interfaces.nameOf(i), onRefresh: (l) => { off = interfaces.onRefresh(l); } });
  return { filter: (p) => m.first(p) === 0, close: () => off() };
}
