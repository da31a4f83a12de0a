/**
 * The security policy stage (RFC 4301-style SPD): createPolicyStage(cfg, {log}) builds it,
 * policyRules(cfg) the kernel rules it needs, policyCheck(cfg) the warnings for `sluice check`.
 */
import type { Stage } from '../engine/stage';
import type { PolicyConfig } from './config';
import { PolicyStage, type PolicyStageOptions } from './stage';

export { policyConfigSchema } from './schema';
export { type PolicyConfig, type PolicyConfigInput } from './config';
export { PolicyStage, type PolicyStageOptions, type AuditLog, type PolicyImage } from './stage';
export { policyRules } from './rules';
export { policyCheck } from './check';
export { compilePolicy, type CompiledPolicy } from './compile';

export function createPolicyStage(cfg: PolicyConfig, opts?: PolicyStageOptions): Stage {
  return new PolicyStage(cfg, opts);
}
