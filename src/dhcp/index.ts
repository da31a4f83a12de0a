/**
 * DHCP on tunnels: a DHCPINFORM responder and a DHCP relay agent for any interface type.
 * createDhcpStage(cfg) builds the stage; dhcpRules(cfg) the kernel rules it needs.
 */
import type { Stage } from '../engine/stage';
import type { DhcpConfig } from './config';
import { DhcpStage, type DhcpStageOptions } from './stage';

export { dhcpConfigSchema, type DhcpConfig, type DhcpConfigInput } from './config';
export { dhcpRules } from './rules';
export { DhcpStage, type DhcpStageOptions } from './stage';
export { InformResponder, InformStatus } from './inform';
export { RelayCore, RelayStatus } from './relay';

export function createDhcpStage(cfg: DhcpConfig, opts?: DhcpStageOptions): Stage {
  return new DhcpStage(cfg, opts);
}
