/**
 * The whole config: the engine's sections plus one optional section per stage area. Unknown keys
 * are errors everywhere (strict objects), so a typo never silently does nothing.
 */
import { z } from 'zod';
import { coreSchemaShape } from './core';
import { natConfigSchema } from '../nat/config';
import { steerConfigSchema } from '../steer/schema';
import { policyConfigSchema } from '../policy/schema';
import { dhcpConfigSchema } from '../dhcp/config';
import { rulesConfigSchema } from '../rules/config';
import { haConfigSchema } from '../ha/config';

export const configSchema = z.object({
  ...coreSchemaShape,
  policy: policyConfigSchema.optional().describe('SPD-style BYPASS / DISCARD / PROTECT policies (docs/config.md#policy)'),
  steer: steerConfigSchema.optional().describe('selectors, marks and route_via steering (docs/config.md#steer)'),
  nat: natConfigSchema.optional().describe('ESP/IKE NAT keyed by SPI (docs/config.md#nat)'),
  dhcp: dhcpConfigSchema.optional().describe('DHCPINFORM responder and relay agent (docs/config.md#dhcp)'),
  rules: rulesConfigSchema.prefault({}).describe('how `sluice rules --apply` fits into the host firewall (docs/config.md#rules)'),
  ha: haConfigSchema.optional().describe('NAT state replication to a standby gateway (docs/ha.md)'),
}).strict().superRefine((c, ctx) => {
  if (c.ha && !c.nat?.enabled) {
    ctx.addIssue({ code: 'custom', path: ['ha'], message: 'ha replicates the NAT: it needs an enabled nat section' });
  }
  if (c.queues.length === 0 && c.tun.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['queues'], message: 'no packet source: list at least one queue (or a tun device)' });
  }
  if (c.workers > 1) {
    // Each queue q expands to q..q+N-1: the ranges must not meet, nor pass the last queue number.
    const used = new Map<number, number>();
    c.queues.forEach((q, i) => {
      for (let k = 0; k < c.workers; k++) {
        const n = q.num + k;
        if (n > 65535) ctx.addIssue({ code: 'custom', path: ['queues', i, 'num'], message: `with workers: ${c.workers}, queue ${q.num} would need queues up to ${q.num + c.workers - 1} (at most 65535)` });
        const other = used.get(n);
        if (other !== undefined) ctx.addIssue({ code: 'custom', path: ['queues', i, 'num'], message: `with workers: ${c.workers}, queue ${q.num} uses queues ${q.num}..${q.num + c.workers - 1}, which meets queue ${c.queues[other]!.num}'s range: leave ${c.workers} numbers between queues` });
        used.set(n, i);
      }
    });
  } else if (c.queue_cpu_fanout) {
    ctx.addIssue({ code: 'custom', path: ['queue_cpu_fanout'], message: 'queue_cpu_fanout needs workers > 1 (it spreads a queue range over CPUs)' });
  }
  // A stage part bound to a queue nobody opens would see no packet: an error, not a warning (with
  // TUN sources the part may still see their packets; pipeline.ts warns then).
  if (c.tun.length === 0) {
    const nums = new Set(c.queues.map((q) => q.num));
    const parts: [string[], number | undefined][] = [
      [['nat', 'queue'], c.nat?.enabled ? c.nat.queue : undefined],
      [['dhcp', 'inform', 'queue'], c.dhcp?.inform?.enabled ? c.dhcp.inform.queue : undefined],
      [['dhcp', 'relay', 'queue'], c.dhcp?.relay?.enabled ? c.dhcp.relay.queue : undefined],
    ];
    for (const [path, q] of parts) {
      if (q !== undefined && !nums.has(q)) {
        ctx.addIssue({ code: 'custom', path, message: `queue ${q} is not declared under queues (declared: ${[...nums].join(', ') || 'none'}); add it there or fix this number` });
      }
    }
  }
});

export type Config = z.infer<typeof configSchema>;
