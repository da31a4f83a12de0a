/**
 * The ESP/IKE NAT keyed by SPI: many IPsec clients behind one public address, without NAT-T.
 * createNatStage(cfg) builds the stage; natRules(cfg) the kernel rules it needs.
 */
import type { Stage } from '../engine/stage';
import type { NatConfig } from './config';
import { NatStage, type NatStageOptions } from './stage';

export { natConfigSchema, type NatConfig, type NatConfigInput } from './config';
export { natRules } from './rules';
export { NatStage, type NatStageOptions } from './stage';
export { formatLearning, formatSaTable, formatSaChunk, formatSaHeader, saListChunks, type LearningEntry, type SaListEntry, type SaListRow } from './commands';

export function createNatStage(cfg: NatConfig, opts?: NatStageOptions): Stage {
  return new NatStage(cfg, opts);
}
