/** Warnings for `sluice check` about a `policy:` section. */
import { shadowWarnings } from '../select/shadow';
import { compilePolicy } from './compile';
import type { PolicyConfig } from './config';

export function policyCheck(cfg: PolicyConfig): string[] {
  let c;
  try { c = compilePolicy(cfg); } catch (e) { return [(e as Error).message]; }
  const out = shadowWarnings('policy', c.names, c.sels);
  if (cfg.default === 'discard' && !cfg.policies.some((p) => p.action !== 'discard')) {
    out.push('default: discard and no bypass/protect policy: every queued packet is dropped');
  }
  if (cfg.default === 'discard' && cfg.capture?.bypass) out.push('default: discard with capture.bypass: true: while sluice is down the kernel accepts everything');
  return out;
}
