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

export const configSchema = z.object({
  ...coreSchemaShape,
  policy: policyConfigSchema.optional().describe('SPD-style BYPASS / DISCARD / PROTECT policies (docs/config.md#policy)'),
  steer: steerConfigSchema.optional().describe('selectors, marks and route_via steering (docs/config.md#steer)'),
  nat: natConfigSchema.optional().describe('ESP/IKE NAT keyed by SPI (docs/config.md#nat)'),
  dhcp: dhcpConfigSchema.optional().describe('DHCPINFORM responder and relay agent (docs/config.md#dhcp)'),
}).strict().superRefine((c, ctx) => {
  if (c.queues.length === 0 && c.tun.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['queues'], message: 'no packet source: list at least one queue (or a tun device)' });
  }
});

export type Config = z.infer<typeof configSchema>;
