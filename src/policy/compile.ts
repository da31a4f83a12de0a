/**
 * From a validated `policy:` section to normalized selectors: the policies (first match) and, per
 * tunnel, three rows the stage tests with the same matcher:
 *   in    arrived through the tunnel from its far side   { in: IFACES, src: REMOTE }
 *   out   leaves through the tunnel to its far side       { out: IFACES, dst: REMOTE }
 *   spoof far-side source on another interface            { src: REMOTE, hook: pre/in/fwd, not: { in: IFACES } }
 */
import { normalizeSelector, type NormSelector } from '../select/selector';
import type { PolicyConfig } from './config';

export const enum PolicyAction { BYPASS = 0, DISCARD = 1, PROTECT = 2 }

export interface CompiledPolicy {
  names: string[];
  sels: NormSelector[];
  actions: PolicyAction[];
  /** Tunnel index per policy (PROTECT), else -1. */
  tunnel: number[];
  tunnelNames: string[];
  /** 3 rows per tunnel: in, out, spoof. */
  tunnelRows: NormSelector[];
}

const ACTION = { bypass: PolicyAction.BYPASS, discard: PolicyAction.DISCARD, protect: PolicyAction.PROTECT } as const;

export function compilePolicy(cfg: PolicyConfig): CompiledPolicy {
  const sets = cfg;
  const tunnelNames = cfg.tunnels.map((t) => t.name);
  const tunnelRows: NormSelector[] = [];
  cfg.tunnels.forEach((t, i) => {
    if (tunnelNames.indexOf(t.name) !== i) throw new Error(`tunnels[${i}]: the name ${t.name} is used twice`);
    try {
      tunnelRows.push(
        normalizeSelector({ in: t.interfaces, src: t.remote }, sets),
        normalizeSelector({ out: t.interfaces, dst: t.remote }, sets),
        normalizeSelector({ src: t.remote, hook: ['prerouting', 'input', 'forward'], not: { in: t.interfaces } }, sets),
      );
    } catch (e) {
      throw new Error(`tunnels[${i}] (${t.name}): ${(e as Error).message}`);
    }
  });
  const names: string[] = [], sels: NormSelector[] = [], actions: PolicyAction[] = [], tunnel: number[] = [];
  cfg.policies.forEach((p, i) => {
    const where = `policies[${i}] (${p.name})`;
    if (names.includes(p.name)) throw new Error(`${where}: the name ${p.name} is used twice`);
    names.push(p.name);
    try { sels.push(normalizeSelector(p.match, sets)); } catch (e) { throw new Error(`${where}.match: ${(e as Error).message}`); }
    actions.push(ACTION[p.action]);
    if (p.action === 'protect') {
      if (p.tunnel === undefined) throw new Error(`${where}: protect needs tunnel: (one of ${tunnelNames.join(', ') || 'none configured'})`);
      const t = tunnelNames.indexOf(p.tunnel);
      if (t < 0) throw new Error(`${where}: unknown tunnel ${p.tunnel}`);
      tunnel.push(t);
    } else {
      if (p.tunnel !== undefined) throw new Error(`${where}: tunnel: only applies to protect`);
      tunnel.push(-1);
    }
  });
  return { names, sels, actions, tunnel, tunnelNames, tunnelRows };
}
