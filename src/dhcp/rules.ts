/**
 * Kernel rules the DHCP stage needs: mangle INPUT NFQUEUE for UDP to port 67 arriving on the
 * configured interfaces (INFORMs, relayed INFORMs, relay clients) and, for the relay, replies
 * (UDP 67 → 67) from the configured servers only. INPUT, not PREROUTING: only what the kernel would deliver locally
 * (broadcasts and our own addresses), so DHCP forwarded through the box is never touched.
 * --queue-bypass always: while sluice is down DHCP is simply delivered as before (a local DHCP
 * server still answers), which is the safe failure for both jobs.
 * With `workers` > 1 every DHCP rule stays on the first worker's queue (oneThread): the relay keeps
 * its transactions in the thread that relayed the request, and a server's reply (server → giaddr)
 * would hash to another queue than the client's request. DHCP is too light to need scaling out.
 */
import type { RuleSet } from '../rules/types';
import { emptyRuleSet } from '../rules/types';
import type { DhcpConfig } from './config';

/** `ppp*` → `ppp+` (iptables' only wildcard is a trailing +); null when the glob cannot be said. */
export function globToIptables(glob: string): string | null {
  if (!/[*?]/.test(glob)) return glob;
  if (/^[^*?]*\*$/.test(glob)) return `${glob.slice(0, -1)}+`;
  return null;
}

export function dhcpRules(cfg: DhcpConfig): RuleSet {
  const rs = emptyRuleSet();
  const seen = new Set<string>();
  const add = (queue: number, args: string[], comment: string): void => {
    const full = [...args, '-j', 'NFQUEUE', '--queue-num', String(queue), '--queue-bypass'];
    const key = full.join(' ');
    if (seen.has(key)) return;
    seen.add(key);
    rs.iptables.push({ table: 'mangle', chain: 'INPUT', args: full, comment, oneThread: true });
  };
  const onIf = (glob: string): string[] => {
    const i = globToIptables(glob);
    return i === null ? [] : ['-i', i];
  };
  const inf = cfg.inform;
  if (inf && inf.enabled) {
    for (const g of inf.interfaces) {
      add(inf.queue, [...onIf(g), '-p', 'udp', '--dport', '67'], `sluice dhcp: DHCPINFORM on ${g} answered by sluice, other DHCP accepted${globToIptables(g) === null ? ' (interface filtered by sluice)' : ''}`);
    }
    for (const g of inf.relay_interfaces) {
      add(inf.queue, [...onIf(g), '-p', 'udp', '--dport', '67'], `sluice dhcp: relayed DHCPINFORM (giaddr set) arriving on ${g}`);
    }
  }
  const rel = cfg.relay;
  if (rel && rel.enabled) {
    for (const i of rel.interfaces) {
      add(rel.queue, [...onIf(i.name), '-p', 'udp', '--dport', '67'], `sluice dhcp: relay client requests on ${i.name}`);
    }
    // Only the configured servers' replies: anything else on port 67 never reaches the relay (the
    // stage checks the source and arrival interface again).
    for (const sv of rel.servers) {
      const onSv = sv.interface ? ['-i', sv.interface] : [];
      add(rel.queue, [...onSv, '-s', `${sv.address}/32`, '-p', 'udp', '--sport', '67', '--dport', '67'], `sluice dhcp: replies from relay server ${sv.address} (to giaddr:67)`);
    }
  }
  return rs;
}
