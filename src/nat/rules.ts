/**
 * Kernel rules the NAT needs (rendered by src/rules):
 * - raw PREROUTING `CT --notrack` for ESP and UDP 500/4500 from the LAN to the servers and from the
 *   WAN to the public addresses: conntrack tracks ESP by addresses only and MASQUERADE remaps ports
 *   500/4500, so the kernel must keep its hands off these flows. Untracked packets skip the nat table,
 *   so the user's own MASQUERADE keeps working for everything else. (nf_defrag_ipv4 runs before raw,
 *   so fragmented ESP still reaches the queue reassembled.)
 * - mangle PREROUTING (inbound, before routing so the new destination is routed to the LAN) and
 *   mangle POSTROUTING (outbound, after routing) NFQUEUE for those untracked flows. No
 *   --queue-bypass: without sluice these packets must not leave with LAN source addresses.
 * - filter FORWARD accepts for the untracked flows, for a default-drop firewall.
 */
import type { IptRule, RuleSet } from '../rules/types';
import { emptyRuleSet } from '../rules/types';
import type { NatConfig } from './config';

export function natRules(cfg: NatConfig): RuleSet {
  const rs = emptyRuleSet();
  if (!cfg.enabled) return rs;
  const wan = cfg.wan_interface;
  const lanIn: string[][] = cfg.lan_interfaces.length > 0 ? cfg.lan_interfaces.map((l) => ['-i', l]) : [['!', '-i', wan]];
  const lanOut: string[][] = cfg.lan_interfaces.length > 0 ? cfg.lan_interfaces.map((l) => ['-o', l]) : [['!', '-o', wan]];
  const servers: string[][] = cfg.servers === 'any' ? [[]] : cfg.servers.map((s) => ['-d', s]);
  const serverSrc: string[][] = cfg.servers === 'any' ? [[]] : cfg.servers.map((s) => ['-s', s]);
  const protos: string[][] = [['-p', 'esp'], ['-p', 'udp', '-m', 'multiport', '--dports', '500,4500']];
  const add = (table: IptRule['table'], chain: string, args: string[], comment: string): void => {
    rs.iptables.push({ table, chain, args, comment });
  };
  const queue = ['-j', 'NFQUEUE', '--queue-num', String(cfg.queue)];
  const untracked = ['-m', 'conntrack', '--ctstate', 'UNTRACKED'];
  for (const p of protos) {
    const what = p[1] === 'esp' ? 'ESP' : 'IKE/ESP-in-UDP';
    for (const l of lanIn) for (const d of servers) {
      add('raw', 'PREROUTING', [...l, ...d, ...p, '-j', 'CT', '--notrack'], `sluice nat: ${what} from LAN hosts to IPsec servers bypasses conntrack/MASQUERADE`);
    }
    for (const pub of cfg.public) for (const s of serverSrc) {
      add('raw', 'PREROUTING', ['-i', wan, ...s, '-d', `${pub}/32`, ...p, '-j', 'CT', '--notrack'], `sluice nat: ${what} from IPsec servers to public ${pub} bypasses conntrack`);
      add('mangle', 'PREROUTING', ['-i', wan, ...s, '-d', `${pub}/32`, ...p, ...untracked, ...queue], `sluice nat: inbound ${what} to ${pub}, destination rewritten to the LAN host`);
    }
    for (const d of servers) {
      add('mangle', 'POSTROUTING', ['-o', wan, ...d, ...p, ...untracked, ...queue], `sluice nat: outbound ${what}, source rewritten to the host's public address`);
    }
    for (const l of lanIn) add('filter', 'FORWARD', [...l, '-o', wan, ...p, ...untracked, '-j', 'ACCEPT'], `sluice nat: forward outbound ${what} (untracked, translated by sluice)`);
    for (const l of lanOut) add('filter', 'FORWARD', ['-i', wan, ...l, ...p, ...untracked, '-j', 'ACCEPT'], `sluice nat: forward inbound ${what} (untracked, translated by sluice)`);
  }
  return rs;
}
