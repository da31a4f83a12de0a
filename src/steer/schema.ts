/**
 * The `steer:` section as the config loader validates it: the shape (src/steer/config.ts) plus the
 * problems only the compiler sees (unknown @sets, duplicate names, no room for route_via marks),
 * reported at load time on the rule they concern.
 */
import { compiledBy } from '../select/refine';
import { compileSteer } from './compile';
import { steerSectionSchema, type SteerConfig } from './config';

export const steerConfigSchema = steerSectionSchema.superRefine(compiledBy<SteerConfig>(compileSteer, 'rules'));
