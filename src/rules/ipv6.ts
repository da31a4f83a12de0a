/**
 * What sluice covers of IPv6 today, stage by stage, for `sluice rules --check` (and the header of
 * `sluice rules`). Every kernel rule sluice writes is IPv4 (iptables, `meta nfproto ipv4`, `ip rule`
 * without -6), so no IPv6 packet reaches the engine:
 *   - nat: ESP/IKE NAT44 (a public IPv4 address shared by LAN hosts): nothing to do for IPv6;
 *   - dhcp: DHCPv4 (INFORM, relay): nothing to do for IPv6 (DHCPv6 is another protocol);
 *   - steer: selectors can name IPv6 (ip_version, proto, ports) but capture and route_via are IPv4:
 *     IPv6 traffic is not steered;
 *   - policy: the SPD sees IPv4 only: IPv6 traffic is neither checked nor discarded by it. With
 *     `default: discard`, that is a hole if the host has IPv6.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Runner } from './apply';

export interface Ipv6Host { enabled: boolean; forwarding: boolean; globalAddrs: string[] }

export function ipv6Host(run: Runner): Ipv6Host {
  const read = (p: string): string => (existsSync(p) ? readFileSync(p, 'utf8').trim() : '');
  const disabled = read('/proc/sys/net/ipv6/conf/all/disable_ipv6') === '1' || !existsSync('/proc/sys/net/ipv6');
  const addrs = [...run('ip', ['-6', '-o', 'addr', 'show', 'scope', 'global']).stdout.matchAll(/^\d+:\s+(\S+)\s+inet6\s+(\S+)/gm)].map((m) => `${m[2]} on ${m[1]}`);
  return { enabled: !disabled, forwarding: read('/proc/sys/net/ipv6/conf/all/forwarding') === '1', globalAddrs: addrs };
}

export interface StagesInUse {
  policy?: { enabled: boolean; default?: string } | undefined;
  steer?: { enabled: boolean } | undefined;
}

/** Warnings, loudest first; empty when no stage in use would need IPv6. */
export function ipv6Warnings(stages: StagesInUse, host: Ipv6Host | null): string[] {
  const out: string[] = [];
  const live = host ? host.enabled && (host.forwarding || host.globalAddrs.length > 0) : true;
  const hostText = !host ? 'IPv6 state of this host not read'
    : !host.enabled ? 'IPv6 is disabled on this host'
      : `this host has IPv6: ${host.globalAddrs.length ? host.globalAddrs.slice(0, 3).join(', ') : 'no global address'}, forwarding ${host.forwarding ? 'on' : 'off'}`;
  if (stages.policy?.enabled) {
    out.push(`${live ? 'WARNING: ' : ''}IPv6 is not covered: the policy stage (SPD, default ${stages.policy.default ?? 'discard'}) sees IPv4 only, so IPv6 packets pass without it (${hostText}). ` +
      'Drop IPv6 in your firewall (ip6tables -P FORWARD DROP / an nft ip6 chain) or disable it (sysctl net.ipv6.conf.all.disable_ipv6=1).');
  }
  if (stages.steer?.enabled) {
    out.push(`${live ? 'WARNING: ' : ''}IPv6 is not covered: steer captures and routes IPv4 only; IPv6 packets take the main routing table (${hostText}).`);
  }
  return out;
}
