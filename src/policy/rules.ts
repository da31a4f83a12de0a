/**
 * Kernel rules the `policy:` section needs: with `capture:`, filter-table NFQUEUE rules that send
 * every packet of the chosen hooks to sluice (an SPD must see all traffic: RFC 4301 4.4.1), loopback
 * left out unless asked. Without `capture:` the operator queues traffic through `queues[].capture`.
 */
import type { RuleSet } from '../rules/types';
import { emptyRuleSet } from '../rules/types';
import type { PolicyConfig } from './config';

export function policyRules(cfg: PolicyConfig): RuleSet {
  const rs = emptyRuleSet();
  if (!cfg.enabled || !cfg.capture) return rs;
  const c = cfg.capture;
  const q = ['-j', 'NFQUEUE', '--queue-num', String(c.queue), ...(c.bypass ? ['--queue-bypass'] : [])];
  for (const h of c.hooks) {
    const chain = h.toUpperCase();
    const lo = !c.skip_loopback ? [] : h === 'input' ? ['!', '-i', 'lo'] : h === 'output' ? ['!', '-o', 'lo'] : [];
    rs.iptables.push({
      table: 'filter', chain, args: [...lo, ...q],
      comment: `sluice policy: every ${h} packet goes through the SPD (default ${cfg.default})`,
    });
  }
  return rs;
}
