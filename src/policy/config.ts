/**
 * The `policy:` section: an RFC 4301-style security policy database (SPD). Ordered policies, first
 * match wins, each BYPASS (allowed in the clear: hand on to the next stage), DISCARD (dropped and
 * counted per policy) or PROTECT (allowed only through a configured tunnel); `default:` decides the
 * rest. Tunnels are interfaces (ipsec0, a TUN device, a vti-like link) plus the addresses expected on
 * their far side.
 *
 * RFC 4301 4.4.1: "the SPD MUST be consulted during the processing of all traffic (inbound and
 * outbound), including IPsec management traffic"; its DISCARD/BYPASS/PROTECT choices are the
 * actions below.
 */
import { z } from 'zod';
import { selectorSchema, selectorSetsShape } from '../select/selector';
import { isAddressSpec } from '../select/addr';

const name = z.string().min(1).max(64).regex(/^[A-Za-z0-9_.-]+$/, 'names: letters, digits, _ . -');
const address = z.string().refine(isAddressSpec, 'an IPv4 address, prefix, any, or @set_name');
const ifname = z.string().min(1).max(15).regex(/^[A-Za-z0-9_.:@*?+-]+$/, 'an interface name or glob');

export const tunnelSchema = z.object({
  name,
  interfaces: z.array(ifname).min(1).describe('the tunnel interface(s): ipsec0, tun*, vti0 ...'),
  remote: z.array(address).min(1).describe('addresses on the far side of the tunnel (the VPN clients\' subnet, the peer networks)'),
}).strict();

export const policyEntrySchema = z.object({
  name,
  match: selectorSchema.prefault({}),
  action: z.enum(['bypass', 'discard', 'protect']),
  tunnel: name.optional().describe('PROTECT: the tunnel the traffic must arrive through or leave by'),
}).strict();

/** The section's shape; policyConfigSchema (src/policy/schema.ts) adds the compiler's checks. */
export const policySectionSchema = z.object({
  enabled: z.boolean().default(true),
  ...selectorSetsShape,
  tunnels: z.array(tunnelSchema).default([]),
  policies: z.array(policyEntrySchema).default([]),
  default: z.enum(['bypass', 'discard']).default('bypass').describe('for packets no policy matches (discard: default-drop firewall)'),
  spoof_check: z.boolean().default(true)
    .describe('before the policies: a packet with a tunnel\'s remote source address that arrived on any other interface is discarded (policy.spoofed)'),
  audit: z.object({
    every: z.number().int().min(1).default(100).describe('log the first discard of each policy, then every Nth'),
    max_per_second: z.number().int().min(0).default(10).describe('cap on audit lines per second (all policies)'),
  }).strict().prefault({}),
  capture: z.object({
    queue: z.number().int().min(0).max(65535),
    bypass: z.boolean().default(false).describe('--queue-bypass; false: traffic stops while sluice is down (fail closed)'),
    hooks: z.array(z.enum(['input', 'forward', 'output'])).min(1).default(['input', 'forward', 'output']),
    skip_loopback: z.boolean().default(true).describe('leave lo traffic out of the queue'),
  }).strict().optional().describe('generate filter-table NFQUEUE rules sending all traffic of these hooks to sluice'),
}).strict();

export type PolicyConfig = z.infer<typeof policySectionSchema>;
export type PolicyConfigInput = z.input<typeof policySectionSchema>;
