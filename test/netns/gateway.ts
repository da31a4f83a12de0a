/**
 * The gateway topology most end-to-end tests share:
 *
 *   client 192.168.1.2 ─ lan0 192.168.1.1 [gw] wan0 203.0.113.1 ─ 203.0.113.10 eth0 [server]
 *                                            wan1 198.51.100.1 ─ 198.51.100.10 eth1
 *   The server's service address 192.0.2.10 sits on its loopback; gw reaches it via wan0 (main
 *   table) or via wan1 (table 100, for fwmark steering tests).
 */
import { Lab, type Namespace } from '../../src/lab/lab';

export interface Gateway {
  lab: Lab;
  client: Namespace;
  gw: Namespace;
  server: Namespace;
}

export async function gatewayLab(prefix: string): Promise<Gateway> {
  const lab = await Lab.create(prefix);
  try {
    const client = lab.ns('cl');
    const gw = lab.ns('gw');
    const server = lab.ns('sv');
    await lab.link(client, 'eth0', gw, 'lan0');
    await lab.link(gw, 'wan0', server, 'eth0');
    await lab.link(gw, 'wan1', server, 'eth1');
    await client.sh('ip addr add 192.168.1.2/24 dev eth0 && ip route add default via 192.168.1.1');
    await gw.sh(`ip addr add 192.168.1.1/24 dev lan0 && ip addr add 203.0.113.1/24 dev wan0 && ip addr add 198.51.100.1/24 dev wan1
      sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
      ip route add 192.0.2.10/32 via 203.0.113.10 dev wan0
      ip route add 192.0.2.10/32 via 198.51.100.10 dev wan1 table 100`);
    await server.sh(`ip addr add 203.0.113.10/24 dev eth0 && ip addr add 198.51.100.10/24 dev eth1 && ip addr add 192.0.2.10/32 dev lo
      sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.eth1.rp_filter=0
      ip route add 192.168.1.0/24 via 203.0.113.1`);
    return { lab, client, gw, server };
  } catch (e) {
    await lab.cleanup();
    throw e;
  }
}

/** ping summary: packets sent and received. */
export async function ping(ns: Namespace, dst: string, count = 10, intervalS = 0.05): Promise<{ sent: number; received: number }> {
  const r = await ns.exec(['ping', '-n', '-q', '-c', String(count), '-i', String(intervalS), '-W', '1', dst], { allowFail: true, timeoutMs: 60000 });
  const m = r.stdout.match(/(\d+) packets transmitted, (\d+) (packets )?received/);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
}
