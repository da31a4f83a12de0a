/**
 * Steering: ordered selectors compiled into a first-match matcher; mark / accept / drop / continue
 * actions; route_via sugar (mark + routing table). createSteerStage(cfg) builds the stage,
 * steerRules(cfg) the kernel rules it needs, steerCheck(cfg) the warnings for `sluice check`.
 */
import type { Stage } from '../engine/stage';
import type { SteerConfig } from './config';
import { SteerStage } from './stage';

export { steerConfigSchema, type SteerConfig, type SteerConfigInput, type SteerRule, type SteerAction } from './config';
export { SteerStage } from './stage';
export { compileSteer, type CompiledSteer, type RouteAlloc } from './compile';
export { Matcher } from './match';
export { steerRules } from './rules';
export { steerCheck } from './check';
export { covers, shadowWarnings } from './shadow';
export { iptMatches, chainsFor } from './iptmatch';
export { normalizeSelector, selectorSchema, addressSetsSchema, type SelectorConfig, type NormSelector } from './selector';

export function createSteerStage(cfg: SteerConfig): Stage {
  return new SteerStage(cfg);
}
