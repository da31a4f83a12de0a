/**
 * The `rules:` section: how `sluice rules --apply` fits its kernel rules into the host's firewall.
 * Everything has a default, so a config without the section behaves as documented in
 * docs/config.md#rules.
 */
import { z } from 'zod';

/** iptables chain names are at most 28 characters; the longest suffix is `-POSTROUTING` (12). */
const PREFIX_MAX = 16;

export const rulesConfigSchema = z.object({
  backend: z.enum(['auto', 'iptables', 'iptables-legacy', 'nft']).default('auto')
    .describe('auto: nft when the host uses nftables natively (docs/operator.md#which-backend), else iptables; iptables-legacy forces that binary'),
  position: z.union([z.enum(['first', 'last']), z.number().int().min(1).max(100000)]).default('first')
    .describe('where the jump into sluice\'s chains goes in each built-in chain: first, last, or a 1-based rule number'),
  chain_prefix: z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/, 'letters, digits and _ (a letter first)').max(PREFIX_MAX)
    .default('SLUICE')
    .describe('iptables chains are PREFIX-PREROUTING, PREFIX-INPUT, ...; the nft table is inet <prefix in lower case>. One per sluice instance'),
}).strict();

export type RulesConfig = z.infer<typeof rulesConfigSchema>;
export type JumpPosition = RulesConfig['position'];

export const DEFAULT_RULES_CONFIG: RulesConfig = { backend: 'auto', position: 'first', chain_prefix: 'SLUICE' };
