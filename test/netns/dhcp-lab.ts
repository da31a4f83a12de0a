/**
 * Shared pieces of the DHCP namespace tests: `sluice run` with a `dhcp:` section and dhcpRules()
 * installed as real iptables rules, the scapy peer (fixtures/dhcp_client.py), dnsmasq, and tcpdump
 * captures read back as `tcpdump -vv` text.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Lab, Namespace, Proc } from '../../src/lab/lab';
import { sleep } from '../../src/lab/lab';
import { dhcpConfigSchema, dhcpRules, type DhcpConfigInput } from '../../src/dhcp';
import { spreadTestQueues, startSluiceWorkers } from '../kit/workers';

export const PEER = resolve(__dirname, '../../../test/netns/fixtures/dhcp_client.py');

export interface Reply {
  src: string; dst: string; sport: number; dport: number; op: number; hops: number; xid: number; flags: number;
  ciaddr: string; yiaddr: string; siaddr: string; giaddr: string; length: number; options: [number, string][];
}

export interface RunningSluice {
  counter(name: string): Promise<number>;
  stop(): Promise<void>;
  readonly proc: Proc;
}

export async function startSluice(lab: Lab, ns: Namespace, dhcp: DhcpConfigInput, name = 'sluice'): Promise<RunningSluice> {
  // With SLUICE_TEST_WORKERS=N: workers: N, the rules with --queue-balance (test/kit/workers.ts).
  for (const r of spreadTestQueues(dhcpRules(dhcpConfigSchema.parse(dhcp))).iptables) {
    await ns.exec(['iptables', '-t', r.table, '-A', r.chain, ...r.args]);
  }
  const sp = await startSluiceWorkers(lab, ns, `queues:\n  - num: 0\n    fail_open: false\ndhcp: ${JSON.stringify(dhcp)}\n`, { name });
  return { proc: sp.proc, counter: (n) => sp.counter(n), stop: async () => { await sp.stop(); } };
}

/** Runs the scapy peer; returns the JSON it prints last (null when no reply was seen). */
export async function peer<T = Reply | null>(ns: Namespace, args: string[], timeoutMs = 20000): Promise<T> {
  const r = await ns.exec(['/usr/bin/python3', PEER, ...args], { timeoutMs, allowFail: true });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try { return JSON.parse(last) as T; } catch { throw new Error(`peer ${args.join(' ')}: ${r.stdout}${r.stderr}`); }
}

export function startDnsmasq(lab: Lab, ns: Namespace, name: string, lines: string[]): { proc: Proc; ready: Promise<void> } {
  const conf = join(lab.dir, `${name}.conf`);
  writeFileSync(conf, [...lines, 'port=0', `dhcp-leasefile=${join(lab.dir, `${name}.leases`)}`, `pid-file=${join(lab.dir, `${name}.pid`)}`, 'log-dhcp', ''].join('\n'));
  const proc = ns.spawn(['dnsmasq', '-k', '-C', conf, '--log-facility=-']);
  return { proc, ready: proc.waitFor(/DHCP, (static|IP range)|started/).then(() => sleep(200)) };
}

/** tcpdump on dev writing a pcap; stop() returns the DHCP messages in it (via tcpdump -vv text). */
export async function capture(lab: Lab, ns: Namespace, dev: string, name: string, filter = 'udp port 67 or udp port 68'): Promise<{ stop(): Promise<string> }> {
  const file = join(lab.dir, `${name}.pcap`);
  const p = ns.spawn(['tcpdump', '-i', dev, '-U', '--immediate-mode', '-n', '-s', '0', '-w', file, filter]);
  await p.waitFor(/listening/);
  return {
    stop: async () => {
      await sleep(300);
      await p.stop('SIGTERM', 3000);
      return (await ns.exec(['tcpdump', '-vvnr', file], { allowFail: true })).stdout;
    },
  };
}

/** Option code → value hex, instances concatenated (RFC 3396), for comparisons. */
export function optionMap(r: Reply): Map<number, string> {
  const m = new Map<number, string>();
  for (const [c, h] of r.options) m.set(c, (m.get(c) ?? '') + h);
  return m;
}

/**
 * nmap's dhcp-discover NSE script as an INFORM client: it unicasts a DHCPINFORM (ciaddr = the
 * interface's address, its own option 55) to target:67 from port 68 and prints the ACK's options.
 * `-sU -p 67` is needed because the script only runs against an open|filtered UDP port 67; `-n -Pn`
 * keep it from doing DNS or a ping first. Returns the printed output and its "Name: value" lines
 * (lists come joined by ", "). nmap 7.93 has no entry for options 121 or 249, so it neither requests
 * nor prints them.
 */
export async function nmapInform(ns: Namespace, dev: string, target: string): Promise<{ out: string; fields: Map<string, string> }> {
  const r = await ns.exec(['nmap', '-n', '-Pn', '-sU', '-p', '67', '-e', dev, '--script', 'dhcp-discover',
    '--script-args', 'dhcptype=DHCPINFORM', target], { allowFail: true, timeoutMs: 20000 });
  const out = r.stdout + r.stderr;
  const fields = new Map<string, string>();
  const block = out.split('\n').filter((l) => /^\|/.test(l) && !/dhcp-discover:/.test(l));
  for (const l of block) {
    const m = /^\|[_ ]\s+([^:]+):\s*(.*)$/.exec(l);
    if (m) fields.set(m[1]!.trim(), m[2]!.trim());
  }
  return { out, fields };
}
