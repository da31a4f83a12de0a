/**
 * Seed 1 on a real kernel: a DHCP server host (dnsmasq) whose eth0 and ipsec0 share 192.168.50.1,
 * with the tunnel's host route to the client (192.168.50.10 dev ipsec0). ipsec0 is a veth with ARP
 * off (a tunnel-like device whose far end is an empty namespace), so what is routed into it is seen
 * by a capture there. Control: without sluice the renewal ACK goes into ipsec0 and the client times
 * out. With examples/steer-dhcp-ipsec.yaml applied (`rules` + `run`): the ACK leaves eth0, the
 * client gets it, and ipsec0 carries none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Lab, labSkipReason } from './lab';
import { SluiceProcess } from '../../src/lab/sluice';
import { nfqueueTargetText, startSluiceWorkers, withTestWorkers } from '../kit/workers';
import { readFileSync } from 'node:fs';
import { capture, EXAMPLES, rulesTool, SRC_FIXTURES } from './steer-helpers';

const skip = labSkipReason();
if (skip) console.log(`# skipping steer-dhcp: ${skip}`);

test('seed 1: renewal ACKs leave eth0, not ipsec0, with sluice\'s mark and generated policy routing', { skip, timeout: 90000 }, async (t) => {
  const lab = await Lab.create('st1');
  t.after(() => lab.cleanup());
  const srv = lab.ns('srv'), cli = lab.ns('cli'), tun = lab.ns('tun');
  await lab.link(srv, 'eth0', cli, 'eth0');
  await lab.link(srv, 'ipsec0', tun, 'ipsec0p');
  await srv.sh(`ip link set ipsec0 arp off
    ip addr add 192.168.50.1/24 dev eth0
    ip addr add 192.168.50.1/24 dev ipsec0
    ip route add 192.168.50.10/32 dev ipsec0`);
  await cli.sh('ip addr add 192.168.50.10/24 dev eth0');
  const mac = (await cli.sh('cat /sys/class/net/eth0/address')).trim();
  const dnsmasq = srv.spawn(['dnsmasq', '--no-daemon', '--port=0', '--interface=eth0', '--dhcp-authoritative',
    '--dhcp-range=192.168.50.10,192.168.50.20,60s', `--dhcp-leasefile=${lab.path('leases')}`, `--pid-file=${lab.path('dnsmasq.pid')}`, '--log-dhcp']);
  await dnsmasq.waitFor(/DHCP, IP range/);
  const renew = async (): Promise<string> =>
    (await cli.exec(['/usr/bin/python3', join(SRC_FIXTURES, 'dhcp_renew.py'), '192.168.50.10', '192.168.50.1', mac, '1.5'])).stdout.trim();
  const acks = async (): Promise<{ reply: string; eth0: string[]; ipsec0: string[] }> => {
    const [e, i] = [await capture(lab, srv, 'eth0', 'udp src port 67'), await capture(lab, srv, 'ipsec0', 'udp src port 67')];
    const reply = await renew();
    return { reply, eth0: await e.stop(), ipsec0: await i.stop() };
  };

  // Control: the bug as the seed describes it.
  const before = await acks();
  assert.equal(before.reply, 'timeout', 'without sluice the client does not get its ACK');
  assert.equal(before.ipsec0.length, 1, `the ACK went into ipsec0: ${before.ipsec0.join('\n')}`);
  assert.equal(before.eth0.length, 0);

  // With sluice: the example config as shipped, rules generated from it.
  const example = withTestWorkers(readFileSync(join(EXAMPLES, 'steer-dhcp-ipsec.yaml'), 'utf8'));
  const cfgFile = SluiceProcess.write(lab, 'example.yaml', example);
  await rulesTool(lab, srv, 'apply', cfgFile);
  const rules = await srv.sh('iptables -t mangle -S; ip rule show; ip route show table 100');
  assert.match(rules, /^-A OUTPUT -m comment --comment "sluice: jump to SLUICE-OUTPUT [^"]*" -j SLUICE-OUTPUT$/m);
  assert.match(rules, new RegExp(`-A SLUICE-OUTPUT -o ipsec0 -p udp -m udp --sport 67 --dport 68 .*${nfqueueTargetText(10)} --queue-bypass`));
  assert.match(rules, /1000:\s+from all fwmark 0x100\/0xff00 lookup 100/);
  assert.match(rules, /default dev eth0/);
  const s = await startSluiceWorkers(lab, srv, example, { name: 'st1' });
  try {
    const after = await acks();
    assert.match(after.reply, /^reply 5 192\.168\.50\.1$/, 'the client got its DHCPACK');
    assert.equal(after.eth0.length, 1, `the ACK left eth0: ${after.eth0.join('\n')}`);
    assert.equal(after.ipsec0.length, 0, `nothing went into ipsec0: ${after.ipsec0.join('\n')}`);
    assert.equal(await s.counter('engine.marked'), 1);
    // Other traffic into the tunnel is untouched: a UDP datagram to the client still goes into ipsec0.
    const i = await capture(lab, srv, 'ipsec0', 'udp port 9');
    await srv.sh('python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b\'x\', (\'192.168.50.10\', 9))"');
    assert.equal((await i.stop()).length, 1);
  } finally {
    await s.stop();
    await rulesTool(lab, srv, 'remove', cfgFile);
  }
  const left = await srv.sh('iptables -t mangle -S; ip rule show; ip route show table 100');
  assert.doesNotMatch(left, /NFQUEUE|SLUICE|fwmark|default dev eth0/, 'remove took everything away');
});
