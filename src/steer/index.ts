/**
 * Steering: ordered selectors compiled into a first-match matcher; mark / accept / drop / continue
 * actions; route_via sugar (mark + routing table). createSteerStage(cfg) builds the stage,
 * steerRules(cfg) the kernel rules it needs, steerCheck(cfg) the warnings for `sluice check`.
 */
import type { Stage } from '../engine/stage';
import type { SteerConfig } from './config';
import { SteerStage } from './stage';

export { steerConfigSchema } from './schema';
export { type SteerConfig, type SteerConfigInput, type SteerRule, type SteerAction } from './config';
export { SteerStage, type SteerImage } from './stage';
export { compileSteer, type CompiledSteer, type RouteAlloc } from './compile';
export { steerRules } from './rules';
export { steerCheck } from './check';

export function createSteerStage(cfg: SteerConfig): Stage {
  return new SteerStage(cfg);
}

/** createSteerStage compiled in slices, the event loop turning between them (reload). */
export function createSteerStageSliced(cfg: SteerConfig): Promise<Stage> {
  return SteerStage.sliced(cfg);
}
