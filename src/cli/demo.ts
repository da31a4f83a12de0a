/**
 * `sluice demo` (what `npm start` runs): a gateway in a namespace lab.
 *
 *   client (192.168.1.2) ── lan0 [gw: sluice on NFQUEUE 0] wan0 ── server (203.0.113.10)
 *
 * The gateway forwards the client's traffic through sluice, which counts and passes it; the
 * counters are printed. Then two more labs: several raw-ESP IPsec clients behind one public address
 * (failing under plain MASQUERADE, working through sluice's SPI-keyed NAT, `sluice sa` printed),
 * and a VPN client learning classless routes from sluice's DHCPINFORM responder. Everything runs in namespaces created for this run and removed
 * afterwards, also on Ctrl-C.
 */
import { Lab, labSkipReason } from '../lab/lab';
import { SluiceProcess } from '../lab/sluice';
import { parse } from './args';
import { formatStats, type StatsReply } from './stats';
import { dhcpDemo } from './demo-dhcp';
import { natDemo } from './demo-nat';

const HELP = `Usage: sluice demo [--keep-seconds N]

Builds a small namespace lab (client, gateway, server), runs sluice on the gateway with real
iptables NFQUEUE rules, sends pings and a UDP stream through it and prints sluice's counters.
Needs root. Namespaces are named sl-demo-* and removed at the end.
  --keep-seconds N   keep the lab up N seconds before cleaning up (to look around with ip netns)
`;

const say = (s: string) => process.stdout.write(`${s}\n`);

export async function demoCommand(argv: string[]): Promise<number> {
  const a = parse(argv, { 'keep-seconds': { type: 'string' } }, HELP);
  if (!a) return 0;
  const skip = labSkipReason();
  if (skip) {
    process.stderr.write(`sluice demo: ${skip}\n`);
    return 1;
  }
  const lab = await Lab.create('demo');
  try {
    const client = lab.ns('client');
    const gw = lab.ns('gw');
    const server = lab.ns('server');
    await lab.link(client, 'eth0', gw, 'lan0');
    await lab.link(gw, 'wan0', server, 'eth0');
    await client.sh('ip addr add 192.168.1.2/24 dev eth0 && ip route add default via 192.168.1.1');
    await gw.sh('ip addr add 192.168.1.1/24 dev lan0 && ip addr add 203.0.113.1/24 dev wan0 && sysctl -qw net.ipv4.ip_forward=1');
    await server.sh('ip addr add 203.0.113.10/24 dev eth0 && ip route add 192.168.1.0/24 via 203.0.113.1');
    say('lab: client 192.168.1.2 — gw (sluice) — server 203.0.113.10');

    const sluice = await SluiceProcess.start(lab, gw, `queues:\n  - num: 0\n    capture:\n      - chain: forward\nlog:\n  level: warn\n`);
    await gw.sh('iptables -A FORWARD -j NFQUEUE --queue-num 0 --queue-bypass');
    say('gw: sluice run, iptables -A FORWARD -j NFQUEUE --queue-num 0 --queue-bypass');

    const ping = await client.exec(['ping', '-c', '5', '-i', '0.2', '-W', '1', '203.0.113.10'], { allowFail: true });
    say(`client: ping 203.0.113.10: ${ping.stdout.match(/\d+ packets transmitted.*/)?.[0] ?? ping.stderr.trim()}`);
    const sink = server.spawn(['python3', '-c', UDP_SINK]);
    await sink.waitFor(/listening/);
    await client.exec(['python3', '-c', UDP_SOURCE]);
    await new Promise((r) => setTimeout(r, 300));
    await sink.stop('SIGTERM');
    say(`server: UDP datagrams received: ${sink.stdout.match(/received (\d+)/)?.[1] ?? '?'} of 2000 sent`);

    say('\n$ sluice stats');
    process.stdout.write(formatStats(await sluice.request('stats') as StatsReply));
    const keep = Number(a.values['keep-seconds'] ?? 0);
    if (keep > 0) {
      say(`\nlab kept for ${keep} s: ip netns list | grep sl-demo`);
      await new Promise((r) => setTimeout(r, keep * 1000));
    }
    await sluice.stop();
    const natOk = await natDemo(lab);
    await dhcpDemo(lab);
    return natOk ? 0 : 1;
  } finally {
    await lab.cleanup();
  }
}

// Plain-socket helpers run inside the namespaces (any python3 will do: no scapy needed here).
const UDP_SINK = `
import socket, signal, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 9000)); n = 0
def done(*_): print('received', n, flush=True); sys.exit(0)
signal.signal(signal.SIGTERM, done); print('listening', flush=True)
while True:
    s.recv(2048); n += 1
`;
const UDP_SOURCE = `
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(2000):
    s.sendto(b'x' * 64, ('203.0.113.10', 9000))
    if i % 100 == 99: time.sleep(0.01)
`;
