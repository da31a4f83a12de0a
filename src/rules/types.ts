/**
 * What a config needs from the kernel, as plain data each part contributes and src/rules renders:
 * iptables-restore text (with cleanup), `ip rule` / `ip route` lines and rt_tables entries.
 */
export type IptTable = 'raw' | 'mangle' | 'filter' | 'nat';

export interface IptRule {
  table: IptTable;
  /** Built-in chain name (PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING). */
  chain: string;
  /** iptables arguments after `-A CHAIN`, e.g. ['-p', 'udp', '--dport', '500', '-j', 'NFQUEUE', ...]. */
  args: string[];
  /** Why the rule exists; rendered as a comment above it and as `-m comment`. */
  comment: string;
  /**
   * With `workers` > 1 the NFQUEUE target stays `--queue-num q` (the first worker's queue) instead
   * of spreading over q..q+N-1: every packet the rule queues must reach the one thread that keeps
   * their state (the DHCP relay's transactions: a server's reply hashes to another queue than the
   * client's request).
   */
  oneThread?: boolean;
}

export interface IpRule {
  /** `ip rule add` arguments, e.g. ['fwmark', '0x10/0xff', 'lookup', '100', 'priority', '1000']. */
  args: string[];
  comment: string;
}

export interface IpRoute {
  /** `ip route add` arguments, e.g. ['default', 'dev', 'eth0', 'table', '100']. */
  args: string[];
  comment: string;
}

export interface RoutingTable {
  id: number;
  name: string;
}

export interface RuleSet {
  iptables: IptRule[];
  ipRules: IpRule[];
  ipRoutes: IpRoute[];
  tables: RoutingTable[];
}

export function emptyRuleSet(): RuleSet {
  return { iptables: [], ipRules: [], ipRoutes: [], tables: [] };
}
