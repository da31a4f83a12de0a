/**
 * Seed 2 on a real kernel. West (sluice) and East are joined twice: eth1 (the wild side,
 * 203.0.113.1 ↔ .2) and ipsec0 (a private wire standing in for the tunnel: a veth pair with ARP off
 * and one MAC on both ends, which is what an IPsec tunnel amounts to for routing). East's private side is 10.1.0.1/16.
 * (1) telnet from West to East's wild-side address goes through ipsec0; ssh to the same address
 *     bypasses it (captures on both links, and the connections work);
 * (2) traffic West generates towards 10.1.0.0/16 takes the tunnel-side source 10.0.1.1 and ipsec0
 *     (`ip rule iif lo` + table from local_routes); without the rules it leaves eth1 from 203.0.113.1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { Lab, labSkipReason } from './lab';
import { SluiceProcess } from '../../src/lab/sluice';
import { startSluiceWorkers, withTestWorkers } from '../kit/workers';
import { capture, EXAMPLES, rulesTool, SRC_FIXTURES } from './steer-helpers';

const skip = labSkipReason();
if (skip) console.log(`# skipping steer-selectors: ${skip}`);

test('seed 2: telnet through the tunnel, ssh around it; local traffic takes the tunnel-side source', { skip, timeout: 90000 }, async (t) => {
  const lab = await Lab.create('st2');
  t.after(() => lab.cleanup());
  const west = lab.ns('west'), east = lab.ns('east'), sunrise = lab.ns('sun'), sunset = lab.ns('set');
  await lab.link(west, 'eth1', east, 'eth1');
  await lab.link(west, 'ipsec0', east, 'ipsec0');
  await lab.link(west, 'eth0', sunset, 'lan0');
  await lab.link(east, 'eth0', sunrise, 'lan0');
  await west.sh(`ip addr add 203.0.113.1/24 dev eth1
    ip addr add 10.0.1.1/24 dev eth0
    ip link set ipsec0 arp off
    ip route add 10.1.0.0/16 via 203.0.113.2 dev eth1   # the booby trap: private side reached in the clear
    sysctl -qw net.ipv4.conf.all.rp_filter=0`);
  // With ARP off a veth sends to its own MAC; the same MAC on both ends makes the frames "for us".
  const wmac = (await west.sh('cat /sys/class/net/ipsec0/address')).trim();
  await east.sh(`ip link set ipsec0 address ${wmac}
    ip addr add 203.0.113.2/24 dev eth1
    ip addr add 10.1.0.1/16 dev eth0
    ip link set ipsec0 arp off
    ip route add 10.0.1.0/24 dev ipsec0
    sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.ipsec0.rp_filter=0 net.ipv4.conf.eth1.rp_filter=0`);
  const server = east.spawn(['python3', join(SRC_FIXTURES, 'tcp_hello.py'), 'serve', '22', '23']);
  await server.waitFor(/listening/);
  const hello = async (port: number): Promise<string> =>
    (await west.exec(['python3', join(SRC_FIXTURES, 'tcp_hello.py'), 'connect', '203.0.113.2', String(port)])).stdout.trim();
  /** Runs fn with captures of West's two links; returns the captured lines. */
  const watch = async (filter: string, fn: () => Promise<unknown>): Promise<{ eth1: string[]; ipsec0: string[] }> => {
    const e = await capture(lab, west, 'eth1', filter), i = await capture(lab, west, 'ipsec0', filter);
    await fn();
    return { eth1: await e.stop(), ipsec0: await i.stop() };
  };
  const out = (lines: string[]) => lines.filter((l) => / 203\.0\.113\.1\.\d+ > | 10\.0\.1\.1\.\d+ > /.test(l));

  // Control: without sluice everything to East leaves eth1.
  const ctl = await watch('tcp port 23', async () => assert.equal(await hello(23), 'hello 23'));
  assert.ok(out(ctl.eth1).length > 0 && out(ctl.ipsec0).length === 0, 'control: telnet in the clear on eth1');

  const example = withTestWorkers(readFileSync(join(EXAMPLES, 'steer-ipsec-selectors.yaml'), 'utf8'));
  const cfgFile = SluiceProcess.write(lab, 'example.yaml', example);
  await rulesTool(lab, west, 'apply', cfgFile);
  const s = await startSluiceWorkers(lab, west, example, { name: 'st2' });
  try {
    // (1) port selectors
    const telnet = await watch('tcp port 23', async () => assert.equal(await hello(23), 'hello 23'));
    assert.ok(out(telnet.ipsec0).length >= 3, `telnet (SYN, ACK, FIN...) went through ipsec0:\n${telnet.ipsec0.join('\n')}`);
    assert.equal(out(telnet.eth1).length, 0, `no telnet in the clear:\n${telnet.eth1.join('\n')}`);
    const ssh = await watch('tcp port 22', async () => assert.equal(await hello(22), 'hello 22'));
    assert.ok(out(ssh.eth1).length >= 3, 'ssh went out eth1');
    assert.equal(out(ssh.ipsec0).length, 0, `no ssh in the tunnel:\n${ssh.ipsec0.join('\n')}`);
    const st = await s.request('stats', { args: { all: true } }) as { stages?: Record<string, { rules?: Record<string, number> }> };
    assert.ok(JSON.stringify(st).includes('telnet-through-tunnel'), 'stats name the rules');

    // (2) iif lo: the host's own traffic to Sunrise-net from 10.0.1.1 through ipsec0 ...
    const local = await watch('udp port 9999', () => west.sh('python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b\'x\', (\'10.1.0.7\', 9999))"'));
    assert.equal(local.ipsec0.filter((l) => / 10\.0\.1\.1\.\d+ > 10\.1\.0\.7\.9999/.test(l)).length, 1, `tunnel-side source:\n${local.ipsec0.join('\n')}`);
    assert.equal(local.eth1.length, 0);
  } finally {
    await s.stop();
    await rulesTool(lab, west, 'remove', cfgFile);
  }
  // ... and without the rules, the booby trap: wild-side source, in the clear.
  const trap = await watch('udp port 9999', () => west.sh('python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b\'x\', (\'10.1.0.7\', 9999))"'));
  assert.equal(trap.eth1.filter((l) => / 203\.0\.113\.1\.\d+ > 10\.1\.0\.7\.9999/.test(l)).length, 1, `control: ${trap.eth1.join('\n')}`);
  assert.equal(trap.ipsec0.length, 0);
});
