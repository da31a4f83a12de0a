/**
 * Kernel rules the `steer:` section needs:
 * - route_via: `ip route add default [via GW] dev DEV [src ADDR] table T` and
 *   `ip rule add fwmark MARK/MASK lookup T priority P` (routes first: a rule never points at an empty
 *   table), plus an rt_tables name. Marks set in PREROUTING steer forwarded traffic; marks set on the
 *   OUTPUT hook make the kernel route locally generated packets again (ip_route_me_harder runs when the
 *   mark changed at NF_INET_LOCAL_OUT — also when the mark comes back from NFQUEUE).
 * - local_routes: `ip rule add iif lo lookup LT priority LP` and `ip route add DST dev DEV src ADDR
 *   table LT`: "iif lo" matches every locally generated packet, so only the host's own traffic takes
 *   the tunnel-side source address (seed 2's "iproute2 alias").
 * - capture (optional): mangle NFQUEUE rules covering what the rules match (src/select/iptmatch.ts).
 */
import type { IptRule, RuleSet } from '../rules/types';
import { emptyRuleSet } from '../rules/types';
import { compileSteer, hex } from './compile';
import type { SteerConfig } from './config';
import { chainName, chainsFor, hookBits, iptMatches } from '../select/iptmatch';

export function steerRules(cfg: SteerConfig): RuleSet {
  const rs = emptyRuleSet();
  if (!cfg.enabled) return rs;
  const c = compileSteer(cfg);
  for (const r of c.routes) {
    const route = ['default'];
    if (r.via) route.push('via', r.via);
    route.push('dev', r.dev);
    if (r.src) route.push('src', r.src);
    route.push('table', String(r.table));
    rs.ipRoutes.push({ args: route, comment: `sluice steer: route_via ${r.dev}${r.via ? ` via ${r.via}` : ''} for rule(s) ${r.rules.join(', ')}` });
    rs.ipRules.push({
      args: ['fwmark', `${hex(r.markValue)}/${hex(r.markMask)}`, 'lookup', String(r.table), 'priority', String(r.priority)],
      comment: `sluice steer: packets marked by rule(s) ${r.rules.join(', ')} use table ${r.table} (${r.tableName})`,
    });
    rs.tables.push({ id: r.table, name: r.tableName });
  }
  if (cfg.local_routes.length > 0) {
    const t = cfg.route_tables.local_table;
    for (const l of cfg.local_routes) {
      const route = [l.dst];
      if (l.via) route.push('via', l.via);
      route.push('dev', l.dev);
      if (l.src) route.push('src', l.src);
      route.push('table', String(t));
      rs.ipRoutes.push({ args: route, comment: `sluice steer: locally generated traffic to ${l.dst} leaves ${l.dev}${l.src ? ` from ${l.src}` : ''}` });
    }
    rs.ipRules.push({
      args: ['iif', 'lo', 'lookup', String(t), 'priority', String(cfg.route_tables.local_priority)],
      comment: 'sluice steer: `iif lo` = traffic this host generates itself consults local_routes first',
    });
    rs.tables.push({ id: t, name: 'sluice.local' });
  }
  if (cfg.capture) {
    const q = ['-j', 'NFQUEUE', '--queue-num', String(cfg.capture.queue), ...(cfg.capture.bypass ? ['--queue-bypass'] : [])];
    const seen = new Set<string>();
    const defaults = hookBits(cfg.capture.hooks);
    c.sels.forEach((sel, i) => {
      for (const h of chainsFor(sel, defaults)) {
        for (const m of iptMatches(sel, h)) {
          const rule: IptRule = { table: 'mangle', chain: chainName(h), args: [...m, ...q], comment: `sluice steer: rule ${c.names[i]} (capture)` };
          const key = `${rule.chain} ${m.join(' ')}`;
          if (seen.has(key)) continue; // an identical earlier capture already queues these packets
          seen.add(key);
          rs.iptables.push(rule);
        }
      }
    });
  }
  return rs;
}
