/**
 * sluice's DHCP relay agent with real clients and servers.
 *
 *   [cl] eth0 ─ lan0 192.168.50.1/24 ┐
 *   [pp] eth0 ─ ppp0 192.168.42.1 peer /32 ┤ [gw: sluice relay] wan0 203.0.113.1 ─ 203.0.113.10 [sv: dnsmasq | Kea]
 *
 * Clients udhcpc (with and without -B), dhclient and dhcpcd get leases through sluice from dnsmasq
 * and from Kea; option 82 is seen at the server and absent at the client; a relayed INFORM (ciaddr
 * set, no broadcast flag) is answered; the hop limit holds; a point-to-point client interface works.
 * Control in the same topology: ISC dhcrelay loses the relayed INFORM's answer and refuses a TUN
 * (non-Ethernet) client interface.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, labSkipReason, sleep, type Namespace } from '../../src/lab/lab';
import type { DhcpConfigInput } from '../../src/dhcp';
import { startSluice, startDnsmasq, peer, capture } from './dhcp-lab';

interface Topo { lab: Lab; gw: Namespace; sv: Namespace; cl: Namespace; pp: Namespace }

async function topo(prefix: string): Promise<Topo> {
  const lab = await Lab.create(prefix);
  const gw = lab.ns('gw'), sv = lab.ns('sv'), cl = lab.ns('cl'), pp = lab.ns('pp');
  await lab.link(cl, 'eth0', gw, 'lan0');
  await lab.link(pp, 'eth0', gw, 'ppp0');
  await lab.link(gw, 'wan0', sv, 'eth0');
  await gw.sh(`ip addr add 192.168.50.1/24 dev lan0 && ip addr add 192.168.42.1 peer 192.168.42.10/32 dev ppp0
    ip addr add 203.0.113.1/24 dev wan0 && sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0`);
  await sv.sh(`ip addr add 203.0.113.10/24 dev eth0 && ip route add 192.168.50.0/24 via 203.0.113.1 && ip route add 192.168.42.0/24 via 203.0.113.1`);
  await cl.sh('ip link set eth0 address 02:00:00:00:00:0c');
  return { lab, gw, sv, cl, pp };
}

const RELAY: DhcpConfigInput = {
  relay: {
    interfaces: [{ name: 'lan0' }, { name: 'ppp*' }],
    servers: ['203.0.113.10'],
    agent_info: { remote_id: 'gw1' },
  },
};

const DNSMASQ = ['interface=eth0', 'bind-interfaces', 'dhcp-range=192.168.50.100,192.168.50.150,255.255.255.0,1h',
  'dhcp-range=192.168.42.10,192.168.42.20,255.255.255.0,1h', 'dhcp-option=option:dns-server,192.0.2.53'];

async function udhcpc(ns: Namespace, extra: string[] = []): Promise<string> {
  const r = await ns.exec(['udhcpc', '-f', '-q', '-n', '-t', '4', '-T', '1', ...extra, '-i', 'eth0', '-s', '/bin/true'], { allowFail: true, timeoutMs: 20000 });
  return r.stdout + r.stderr;
}

async function dhclient(lab: Lab, ns: Namespace, tag: string): Promise<string> {
  const r = await ns.exec(['timeout', '12', 'dhclient', '-d', '-v', '-1', '-sf', '/bin/true', '-lf', lab.path(`${tag}.leases`), '-pf', lab.path(`${tag}.pid`), 'eth0'], { allowFail: true, timeoutMs: 20000 });
  return r.stdout + r.stderr;
}

async function dhcpcd(ns: Namespace): Promise<string> {
  const r = await ns.exec(['dhcpcd', '-4', '-d', '-1', '-T', '-t', '10', 'eth0'], { allowFail: true, timeoutMs: 20000 });
  return r.stdout + r.stderr;
}

const LEASE = /lease of 192\.168\.50\.1\d\d obtained/;

test('relay to dnsmasq: udhcpc ±-B, dhclient, dhcpcd, option 82, relayed INFORM, hop limit, p2p client; dhcrelay control', { skip: labSkipReason(), timeout: 180000 }, async (t) => {
  const T = await topo('dhrl');
  const { lab, gw, sv, cl, pp } = T;
  t.after(() => lab.cleanup());
  const dm = startDnsmasq(lab, sv, 'dnsmasq', DNSMASQ);
  await dm.ready;

  // Control first: ISC dhcrelay on the same topology.
  await cl.sh('ip addr add 192.168.50.20/24 dev eth0');
  const dr = gw.spawn(['dhcrelay', '-4', '-d', '-id', 'lan0', '-iu', 'wan0', '203.0.113.10']);
  await dr.waitFor(/Listening on|Sending on/, 10000).catch(() => undefined);
  await sleep(500);
  const ctlInform = await peer(cl, ['inform', 'eth0', '192.168.50.20', '255.255.255.255', '192.168.50.20', '--prl', '1,6', '--timeout', '2.5']);
  await dr.stop();
  // dhcrelay sends the ACK "to yiaddr" at chaddr: IP destination 0.0.0.0, which no client stack accepts.
  t.diagnostic(`dhcrelay, relayed INFORM without the broadcast flag: ${ctlInform ? `ACK sent to ${ctlInform.dst}:${ctlInform.dport}` : 'no ACK on the client link'}`);
  assert.ok(ctlInform === null || ctlInform.dst !== '192.168.50.20', 'control: dhcrelay does not deliver the relayed INFORM answer to ciaddr');
  await gw.sh('ip tuntap add dev tun9 mode tun && ip addr add 192.168.60.1/24 dev tun9 && ip link set tun9 up');
  const drTun = await gw.exec(['timeout', '5', 'dhcrelay', '-4', '-d', '-id', 'tun9', '-iu', 'wan0', '203.0.113.10'], { allowFail: true, timeoutMs: 10000 });
  t.diagnostic(`dhcrelay on a TUN client interface: ${(drTun.stdout + drTun.stderr).split('\n').filter((l) => /unsupported|type|error|exiting/i.test(l)).join(' | ')}`);
  assert.match(drTun.stdout + drTun.stderr, /[Uu]nsupported device type|not.*(ethernet|supported)/, 'control: dhcrelay refuses a non-Ethernet client interface');

  const sl = await startSluice(lab, gw, RELAY);
  const svCap = await capture(lab, sv, 'eth0', 'server');
  const clCap = await capture(lab, cl, 'eth0', 'client');

  // The relayed INFORM (ciaddr set, no broadcast flag): dnsmasq answers to giaddr:67, sluice to ciaddr:68.
  const inf = await peer(cl, ['inform', 'eth0', '192.168.50.20', '255.255.255.255', '192.168.50.20', '--prl', '1,6']);
  assert.ok(inf, 'relayed INFORM answered through sluice');
  assert.equal(inf.dst, '192.168.50.20'); assert.equal(inf.dport, 68); assert.equal(inf.src, '192.168.50.1');
  assert.ok(!inf.options.some((o) => o[0] === 82), 'no 82 at the client');
  await cl.sh('ip addr flush dev eth0');

  // DORA with real clients.
  const u1 = await udhcpc(cl);
  assert.match(u1, LEASE, `udhcpc:\n${u1}`);
  const u2 = await udhcpc(cl, ['-B']);
  assert.match(u2, LEASE, `udhcpc -B:\n${u2}`);
  const dc = await dhclient(lab, cl, 'dhc');
  assert.match(dc, /bound to 192\.168\.50\.1\d\d/, `dhclient:\n${dc}`);
  const dd = await dhcpcd(cl);
  assert.match(dd, /new_ip_address='192\.168\.50\.1\d\d'/, `dhcpcd:\n${dd}`);

  // Point-to-point client interface.
  const p = await udhcpc(pp);
  assert.match(p, /lease of 192\.168\.42\.(1\d|20) obtained/, `udhcpc over ppp0:\n${p}`);

  // Hop limit (max_hops 10): hops 9 goes on as 10, hops 10 is dropped.
  await peer(cl, ['request', 'eth0', 'discover', '--hops', '9', '--xid', '305419896']);
  await peer(cl, ['request', 'eth0', 'discover', '--hops', '10', '--xid', '305419897']);
  await sleep(500);
  const [svText, clText] = [await svCap.stop(), await clCap.stop()];
  assert.match(svText, /Agent-Information[\s\S]*?Circuit-ID SubOption 1, length 4: lan0/, 'server sees circuit-id lan0');
  assert.match(svText, /Circuit-ID SubOption 1, length 4: ppp0/, 'server sees circuit-id ppp0');
  assert.match(svText, /Remote-ID SubOption 2, length 3: gw1/);
  assert.doesNotMatch(clText, /Agent-Information/, '82 stripped before the client');
  assert.match(svText, /hops 10, xid 0x12345678/, 'hops 9 relayed as 10');
  assert.doesNotMatch(svText, /xid 0x12345679/, 'hops 10 not relayed');
  assert.equal(await sl.counter('dhcp.relay.hop_limit'), 1);
  assert.ok(await sl.counter('dhcp.relay.replied') >= 8);
  await sl.stop();
});

test('relay to Kea: udhcpc ±-B, dhclient, dhcpcd, relayed INFORM', { skip: labSkipReason(), timeout: 120000 }, async (t) => {
  const T = await topo('dhrk');
  const { lab, gw, sv, cl } = T;
  t.after(() => lab.cleanup());
  const run = join(lab.dir, 'kea');
  mkdirSync(run, { recursive: true });
  const conf = join(lab.dir, 'kea.json');
  writeFileSync(conf, JSON.stringify({
    Dhcp4: {
      'interfaces-config': { interfaces: ['eth0'], 'dhcp-socket-type': 'udp' },
      'lease-database': { type: 'memfile', persist: false },
      'valid-lifetime': 3600,
      subnet4: [{ id: 1, subnet: '192.168.50.0/24', pools: [{ pool: '192.168.50.100 - 192.168.50.150' }],
        'option-data': [{ name: 'domain-name-servers', data: '192.0.2.53' }] }],
      loggers: [{ name: 'kea-dhcp4', output_options: [{ output: 'stdout' }], severity: 'INFO' }],
    },
  }));
  const kea = sv.spawn(['env', `KEA_PIDFILE_DIR=${run}`, `KEA_LOCKFILE_DIR=${run}`, 'kea-dhcp4', '-c', conf]);
  await kea.waitFor(/DHCP4_STARTED|started/, 15000);
  const sl = await startSluice(lab, gw, RELAY);
  const svCap = await capture(lab, sv, 'eth0', 'kea');
  const u = await udhcpc(cl);
  assert.match(u, LEASE, `udhcpc via Kea:\n${u}\n${kea.output}`);
  const ub = await udhcpc(cl, ['-B']);
  assert.match(ub, LEASE, `udhcpc -B via Kea:\n${ub}`);
  const dd = await dhcpcd(cl);
  assert.match(dd, /new_ip_address='192\.168\.50\.1\d\d'/, `dhcpcd via Kea:\n${dd}`);
  const dc = await dhclient(lab, cl, 'dhk');
  assert.match(dc, /bound to 192\.168\.50\.1\d\d/, `dhclient via Kea:\n${dc}`);
  // Kea answers a relayed INFORM straight to the client (ciaddr), not through the relay.
  await cl.sh('ip addr add 192.168.50.20/24 dev eth0');
  const inf = await peer(cl, ['inform', 'eth0', '192.168.50.20', '255.255.255.255', '192.168.50.20', '--prl', '1,6']);
  assert.ok(inf, `relayed INFORM answered (by Kea, directly):\n${kea.output.slice(-3000)}`);
  assert.equal(inf.dst, '192.168.50.20');
  const svText = await svCap.stop();
  assert.match(svText, /Circuit-ID SubOption 1, length 4: lan0/, 'Kea sees option 82');
  assert.ok(await sl.counter('dhcp.relay.forwarded') >= 4);
  await sl.stop();
});

test('relay reply trust: a VPN client on ppp1 cannot answer for the client on ppp0 (forged BOOTREPLY, own namespace)', { skip: labSkipReason(), timeout: 90000 }, async (t) => {
  const T = await topo('dhrt');
  const { lab, gw, sv, pp } = T;
  t.after(() => lab.cleanup());
  // The attacker: a second point-to-point client, ppp1, sharing ppp0's local address (as pppd does).
  const at = lab.ns('at');
  await lab.link(at, 'eth0', gw, 'ppp1');
  await gw.sh('ip addr add 192.168.42.1 peer 192.168.42.11/32 dev ppp1');
  await at.sh('ip addr add 192.168.42.11 peer 192.168.42.1/32 dev eth0 && ip route add default dev eth0');
  const dm = startDnsmasq(lab, sv, 'dnsmasq', DNSMASQ);
  await dm.ready;
  const sl = await startSluice(lab, gw, RELAY);
  // The relay works for the victim before and after.
  assert.match(await udhcpc(pp), /lease of 192\.168\.42\.(1\d|20) obtained/, 'victim leases through the relay');
  const victim = await capture(lab, pp, 'eth0', 'victim', 'udp port 68');
  const forge = (src: string, extra: string[]) => peer<{ sent: number }>(at, ['forge-reply', 'eth0', src, '192.168.42.1', ...extra]);
  // 1. From its own address, 82 naming ppp0 (circuit-id and remote-id copied from what a relay sends).
  await forge('192.168.42.11', ['--circuit', 'ppp0', '--remote', 'gw1', '--xid', '4242']);
  // 2. Spoofing the server's address from the client side.
  await forge('203.0.113.10', ['--circuit', 'ppp0', '--remote', 'gw1', '--xid', '4243']);
  // 3. No 82 at all, giaddr = the shared ppp address.
  await forge('203.0.113.10', ['--xid', '4244']);
  await sleep(500);
  const seen = await victim.stop();
  t.diagnostic(`victim link during the attack:\n${seen || '(nothing)'}`);
  assert.doesNotMatch(seen, /6\.6\.6\.6/, 'no forged router reaches the client on ppp0');
  assert.doesNotMatch(seen, /xid 0x109[23]/, 'no forged reply relayed');
  assert.equal(await sl.counter('dhcp.relay.reply_not_server'), 3, 'replies arriving on ppp1 (queued by the client-request rule) dropped and counted');
  assert.match(await udhcpc(pp), /lease of 192\.168\.42\.(1\d|20) obtained/, 'victim still leases');
  await sl.stop();
});
