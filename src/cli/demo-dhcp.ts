/**
 * Demo part: a VPN client on a point-to-point tunnel link (ppp0, /32 peers, no ARP) sends a
 * DHCPINFORM; sluice answers it with DNS and RFC 3442 classless routes, and the client (dhcpcd -T)
 * prints what it learned.
 */
import type { Lab } from '../lab/lab';
import { SluiceProcess } from '../lab/sluice';

const say = (s: string) => process.stdout.write(`${s}\n`);

const CONFIG = `queues:
  - num: 0
dhcp:
  inform:
    queue: 0
    interfaces: [ppp*]
    scopes:
      - name: vpn
        subnet_mask: 255.255.255.0
        routers: [192.168.42.1]
        dns_servers: [10.0.0.2]
        domain_name: corp.example
        classless_routes:
          - { destination: 10.0.0.0/8, router: 192.168.42.1 }
          - { destination: 172.16.0.0/12, router: 192.168.42.1 }
log:
  level: warn
`;

export async function dhcpDemo(lab: Lab): Promise<void> {
  say('\n== DHCPINFORM on a tunnel link ==');
  const gw = lab.ns('dgw');
  const cl = lab.ns('dcl');
  await lab.link(cl, 'eth0', gw, 'ppp0');
  await gw.sh('ip addr add 192.168.42.1 peer 192.168.42.10/32 dev ppp0');
  await cl.sh('ip addr add 192.168.42.10 peer 192.168.42.1/32 dev eth0');
  say('lab: VPN client 192.168.42.10 — ppp0 (point-to-point) — gateway 192.168.42.1 with sluice');
  const sluice = await SluiceProcess.start(lab, gw, CONFIG, { name: 'dhcp-demo' });
  await gw.sh('iptables -t mangle -A INPUT -i ppp+ -p udp --dport 67 -j NFQUEUE --queue-num 0 --queue-bypass');
  const r = await cl.exec(['dhcpcd', '-4', '-d', '-1', '-T', '-t', '8', '-s', '192.168.42.10/32', 'eth0'], { allowFail: true, timeoutMs: 20000 });
  const learned = (r.stdout + r.stderr).split('\n')
    .filter((l) => /^new_(classless_static_routes|domain_name_servers|domain_name|subnet_mask|dhcp_message_type)=/.test(l));
  say('client: dhcpcd -T (sends DHCPINFORM) learned:');
  for (const l of learned.length ? learned : ['(nothing: see `sluice stats`)']) say(`  ${l}`);
  say(`gateway: INFORMs answered by sluice: ${await sluice.counter('engine.answered')}`);
  await sluice.stop();
}
