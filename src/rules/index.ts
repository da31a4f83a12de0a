/**
 * Kernel rules: the RuleSet type each area contributes, the renderer (`sluice rules`) and the
 * idempotent apply / remove (`sluice rules --apply` / `--remove`).
 */
export { emptyRuleSet, type RuleSet, type IptRule, type IpRule, type IpRoute, type RoutingTable, type IptTable } from './types';
export { renderRuleSet, iptArgv, dedupeTables, type RenderedRuleSet } from './render';
export { renderNft, nftRule, nftChainName, NftTranslateError, NFT_TABLE, type RenderedNft } from './nft';
export { applyRuleSet, removeRuleSet, checkIptables, checkRouting, readIptOwned, iptablesBinary, legacyTables, defaultRun, ApplyError, DEFAULT_RT_TABLES, type ApplyOptions, type ApplyReport, type Runner, type RunResult } from './apply';
export { applyNft, removeNftTable, checkNft, detectBackend, nftLoadable, nftTableName, type Backend } from './nft-apply';
export { ipv6Host, ipv6Warnings } from './ipv6';
export { rulesConfigSchema, DEFAULT_RULES_CONFIG, type RulesConfig, type JumpPosition } from './config';
export type { Drift } from './ipt-plan';

import type { RuleSet } from './types';
import { emptyRuleSet } from './types';

/** Concatenates rule sets (pipeline order). */
export function mergeRuleSets(...sets: RuleSet[]): RuleSet {
  const all = emptyRuleSet();
  for (const s of sets) {
    all.iptables.push(...s.iptables);
    all.ipRules.push(...s.ipRules);
    all.ipRoutes.push(...s.ipRoutes);
    all.tables.push(...s.tables);
  }
  return all;
}
