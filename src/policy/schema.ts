/**
 * The `policy:` section as the config loader validates it: the shape (src/policy/config.ts) plus the
 * problems only the compiler sees (unknown @sets and tunnels, duplicate names), reported at load
 * time on the policy they concern.
 */
import { compiledBy } from '../select/refine';
import { compilePolicy } from './compile';
import { policySectionSchema, type PolicyConfig } from './config';

export const policyConfigSchema = policySectionSchema.superRefine(compiledBy<PolicyConfig>(compilePolicy, 'policies'));
