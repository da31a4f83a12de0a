/**
 * Seed 3 on a real kernel, with examples/policy-vpn-gateway.yaml as shipped:
 *   inet (203.0.113.50, also the spoofer) ── extif  gw  wirif ── lan (10.0.1.7)
 *   vpn client (10.0.2.5) ── vpn0 ═ ipsec0 (the tunnel: a veth pair, ARP off, one MAC)
 * Control without sluice: a packet with a VPN source sent from the internet side reaches the LAN.
 * With sluice (default discard): the VPN subnet reaches the LAN (and back) only through ipsec0; the
 * spoofed packet is discarded and counted as policy.spoofed (and logged); DNS on the gateway answers
 * VPN clients through the tunnel only; IKE to the public address passes; anything else is dropped
 * under policy.default.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { Lab, labSkipReason, sleep, type Namespace } from './lab';
import { SluiceProcess } from '../../src/lab/sluice';
import { startSluiceWorkers, withTestWorkers } from '../kit/workers';
import { EXAMPLES, rulesTool } from './steer-helpers';

const skip = labSkipReason();
if (skip) console.log(`# skipping policy-vpn: ${skip}`);

/** A UDP listener printing "got SRC PORT DATA" per datagram and answering "re:DATA". */
const LISTEN = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[2]))); print('listening', flush=True)
while True:
    d, a = s.recvfrom(2048); print('got %s %d %s' % (a[0], a[1], d.decode()), flush=True); s.sendto(b're:' + d, a)
`;
/** Sends one datagram from SRC:SPORT (0: any port) to DST:PORT; prints the answer or "timeout". */
const ASK = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[6]))); s.settimeout(float(sys.argv[5]))
s.sendto(sys.argv[4].encode(), (sys.argv[2], int(sys.argv[3])))
try: print(s.recvfrom(2048)[0].decode())
except socket.timeout: print('timeout')
`;

test('seed 3: default discard; VPN ↔ LAN only through the tunnel; spoofed VPN source discarded and counted; DNS via tunnel only', { skip, timeout: 120000 }, async (t) => {
  const lab = await Lab.create('pv');
  t.after(() => lab.cleanup());
  const gw = lab.ns('gw'), inet = lab.ns('inet'), lan = lab.ns('lan'), vpn = lab.ns('vpn');
  await lab.link(gw, 'extif', inet, 'eth0');
  await lab.link(gw, 'wirif', lan, 'eth0');
  await lab.link(gw, 'ipsec0', vpn, 'vpn0');
  const mac = (await gw.sh('cat /sys/class/net/ipsec0/address')).trim();
  await gw.sh(`ip addr add 203.0.113.1/24 dev extif
    ip addr add 10.0.1.1/24 dev wirif
    ip link set ipsec0 arp off
    ip route add 10.0.2.0/24 dev ipsec0
    sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.extif.rp_filter=0`);
  await vpn.sh(`ip link set vpn0 address ${mac}
    ip link set vpn0 arp off
    ip addr add 10.0.2.5/32 dev vpn0
    ip route add default dev vpn0 src 10.0.2.5`);
  await lan.sh('ip addr add 10.0.1.7/24 dev eth0 && ip route add default via 10.0.1.1');
  // The internet host also holds a VPN address, to send with it: the spoofer.
  await inet.sh(`ip addr add 203.0.113.50/24 dev eth0
    ip addr add 10.0.2.5/32 dev lo
    ip route add 10.0.1.0/24 via 203.0.113.1`);

  const listen = async (ns: Namespace, addr: string, port: number) => {
    const p = ns.spawn(['python3', '-c', LISTEN, addr, String(port)]);
    await p.waitFor(/listening/);
    return p;
  };
  const ask = async (ns: Namespace, src: string, dst: string, port: number, data: string, timeoutS = 1.5, sport = 0): Promise<string> =>
    (await ns.exec(['python3', '-c', ASK, src, dst, String(port), data, String(timeoutS), String(sport)])).stdout.trim();

  const lanSvc = await listen(lan, '0.0.0.0', 7000);
  const dns = await listen(gw, '10.0.1.1', 53);
  const ike = await listen(gw, '203.0.113.1', 500);

  // Control: no SPD. The VPN client works, and so does the spoofer.
  assert.equal(await ask(vpn, '10.0.2.5', '10.0.1.7', 7000, 'ctl-vpn'), 're:ctl-vpn');
  await ask(inet, '10.0.2.5', '10.0.1.7', 7000, 'ctl-spoof', 0.5);
  await sleep(200);
  assert.match(lanSvc.stdout, /got 10\.0\.2\.5 \d+ ctl-spoof/, 'control: the spoofed VPN packet reached the LAN');

  const example = withTestWorkers(readFileSync(join(EXAMPLES, 'policy-vpn-gateway.yaml'), 'utf8'));
  const cfgFile = SluiceProcess.write(lab, 'example.yaml', example);
  await rulesTool(lab, gw, 'apply', cfgFile);
  const s = await startSluiceWorkers(lab, gw, example, { name: 'pv' });
  try {
    // VPN ↔ LAN through the tunnel: request forwarded in, reply forwarded out (both PROTECT policies).
    assert.equal(await ask(vpn, '10.0.2.5', '10.0.1.7', 7000, 'via-tunnel'), 're:via-tunnel');
    // The same source address from the public side: discarded, counted, logged.
    for (let i = 0; i < 3; i++) await ask(inet, '10.0.2.5', '10.0.1.7', 7000, `spoof-${i}`, 0.3);
    // DNS on the gateway: VPN clients through the tunnel get answers; the spoofer does not.
    assert.equal(await ask(vpn, '10.0.2.5', '10.0.1.1', 53, 'dns-q'), 're:dns-q');
    assert.equal(await ask(inet, '10.0.2.5', '10.0.1.1', 53, 'dns-spoof', 0.5), 'timeout');
    // IKE to the public address passes (bypass); DNS from the internet does not (default discard).
    await ask(inet, '203.0.113.50', '203.0.113.1', 500, 'ike', 0.3, 500);
    assert.equal(await ask(inet, '203.0.113.50', '10.0.1.1', 53, 'dns-inet', 0.5), 'timeout');
    await sleep(200);
    assert.doesNotMatch(lanSvc.stdout, /spoof-/, 'no spoofed packet reached the LAN');
    assert.match(lanSvc.stdout, /got 10\.0\.2\.5 \d+ via-tunnel/);
    assert.doesNotMatch(dns.stdout, /dns-spoof|dns-inet/);
    assert.match(dns.stdout, /got 10\.0\.2\.5 \d+ dns-q/);
    assert.match(ike.stdout, /got 203\.0\.113\.50 \d+ ike/);
    assert.equal(await s.counter('policy.spoofed'), 4, '3 spoofed to the LAN + 1 spoofed DNS query');
    assert.equal(await s.counter('policy.default'), 1, 'the DNS query from the internet');
    const out = s.proc.output;
    assert.match(out, /policy discard: spoof_check \(spoofed\) 10\.0\.2\.5:\d+ -> 10\.0\.1\.7:7000/, 'audit line names the policy and packet');
    const st = JSON.stringify(await s.request('stats', { args: { all: true } }));
    assert.match(st, /vpn-to-lan/, 'per-policy counters in stats');
  } finally {
    await s.stop();
    await rulesTool(lab, gw, 'remove', cfgFile);
  }
  assert.doesNotMatch(await gw.sh('iptables -S'), /NFQUEUE/);
});
