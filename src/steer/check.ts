/**
 * Warnings for `sluice check` about a `steer:` section that validates but will not do what it says.
 */
import { ActionType, compileSteer } from './compile';
import type { SteerConfig } from './config';
import { shadowWarnings } from '../select/shadow';

const ROUTING_HOOKS = 0b01001; // prerouting (0), output (3): marks there change the routing decision

export function steerCheck(cfg: SteerConfig): string[] {
  let c;
  try { c = compileSteer(cfg); } catch (e) { return [(e as Error).message]; }
  const out = shadowWarnings('rule', c.names, c.sels);
  c.actions.forEach((a, i) => {
    const hooks = c.sels[i]!.pos.hook;
    if (a.route >= 0 && hooks !== undefined && (hooks & ROUTING_HOOKS) === 0) {
      out.push(`rule ${c.names[i]}: route_via on hook(s) after routing (input/forward/postrouting) cannot change the route; use prerouting or output`);
    }
    if (a.route >= 0 && a.type === ActionType.DROP) out.push(`rule ${c.names[i]}: route_via with drop`);
  });
  if (cfg.capture && cfg.default !== 'continue') {
    out.push(`default: ${cfg.default} only applies to packets that reach sluice; capture queues only what the rules can match`);
  }
  if (cfg.rules.length === 0 && cfg.enabled) out.push('no rules: the steer stage passes every packet on');
  return out;
}
