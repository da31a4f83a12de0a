/**
 * sluice's DHCPINFORM responder against real clients, with dnsmasq 2.90 as the reference.
 *
 *   [cl] eth0 192.168.42.10 ─ p2p /32 ─ ppp0 192.168.42.1 [gw: dnsmasq, then sluice]
 *
 * Clients: dhcpcd -T (INFORM; its printed classless routes must equal the configured ones),
 * dhcping -i, nmap's dhcp-discover script (dhcptype=DHCPINFORM; its printed values must be the
 * configured ones), and the scapy Windows-like INFORM (fixtures/dhcp_client.py) whose ACKs from both
 * servers are compared option by option. Variants: 55 with only 249, no 55, ciaddr 0, unknown
 * interface. Then the shared-address case (the ACK must leave eth0, where dnsmasq's goes into the
 * tunnel), a TUN device as the client-facing interface, and 10,000 garbage packets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, labSkipReason, type Namespace } from '../../src/lab/lab';
import type { DhcpConfigInput } from '../../src/dhcp';
import { startSluice, startDnsmasq, peer, capture, optionMap, nmapInform, PEER, type Reply } from './dhcp-lab';

const ROUTES_TEXT = '10.20.0.0/16 192.168.42.1 192.168.77.0/24 192.168.42.254';
const DNSMASQ_OPTIONS = [
  'dhcp-option=option:router,192.168.42.1',
  'dhcp-option=option:dns-server,192.168.42.1',
  'dhcp-option=option:domain-name,vpn.example',
  'dhcp-option=121,10.20.0.0/16,192.168.42.1,192.168.77.0/24,192.168.42.254',
  'dhcp-option=249,10.20.0.0/16,192.168.42.1,192.168.77.0/24,192.168.42.254',
];
function sluiceCfg(interfaces: string[]): DhcpConfigInput {
  return {
    inform: {
      interfaces,
      scopes: [{
        match: { interfaces },
        subnet_mask: '255.255.255.0',
        routers: ['192.168.42.1'],
        dns_servers: ['192.168.42.1'],
        domain_name: 'vpn.example',
        classless_routes: [
          { destination: '10.20.0.0/16', router: '192.168.42.1' },
          { destination: '192.168.77.0/24', router: '192.168.42.254' },
        ],
      }],
    },
  };
}

async function p2p(lab: Lab): Promise<{ gw: Namespace; cl: Namespace }> {
  const gw = lab.ns('gw');
  const cl = lab.ns('cl');
  await lab.link(cl, 'eth0', gw, 'ppp0');
  await gw.sh('ip addr add 192.168.42.1 peer 192.168.42.10/32 dev ppp0');
  await cl.sh('ip link set eth0 address 02:00:00:00:00:0c && ip addr add 192.168.42.10 peer 192.168.42.1/32 dev eth0');
  return { gw, cl };
}

interface Answers { win: Reply | null; only249: Reply | null; noPrl: Reply | null; ciaddr0: Reply | null; dhcpcd: string; dhcping: string; nmap: Awaited<ReturnType<typeof nmapInform>> }

async function askAll(cl: Namespace): Promise<Answers> {
  const win = await peer(cl, ['inform', 'eth0', '192.168.42.10', '255.255.255.255', '192.168.42.10']);
  const only249 = await peer(cl, ['inform', 'eth0', '192.168.42.10', '255.255.255.255', '192.168.42.10', '--prl', '1,3,249']);
  const noPrl = await peer(cl, ['inform', 'eth0', '192.168.42.10', '255.255.255.255', '192.168.42.10', '--no-prl']);
  const ciaddr0 = await peer(cl, ['inform', 'eth0', '192.168.42.10', '255.255.255.255', '0.0.0.0', '--prl', '1,6']);
  const dhcpcd = (await cl.exec(['dhcpcd', '-4', '-d', '-1', '-T', '-t', '8', '-s', '192.168.42.10/32', 'eth0'], { allowFail: true, timeoutMs: 20000 })).stdout;
  const dhcping = (await cl.exec(['dhcping', '-i', '-c', '192.168.42.10', '-s', '192.168.42.1', '-h', '02:00:00:00:00:0c'], { allowFail: true, timeoutMs: 15000 })).stdout;
  const nmap = await nmapInform(cl, 'eth0', '192.168.42.1');
  return { win, only249, noPrl, ciaddr0, dhcpcd, dhcping, nmap };
}

const codes = (r: Reply | null): number[] => (r ? r.options.map((o) => o[0]) : []);

test('INFORM on a point-to-point interface: sluice vs dnsmasq, dhcpcd, dhcping, nmap, scapy', { skip: labSkipReason(), timeout: 120000 }, async (t) => {
  const lab = await Lab.create('dhinf');
  t.after(() => lab.cleanup());
  const { gw, cl } = await p2p(lab);

  const dm = startDnsmasq(lab, gw, 'dnsmasq', ['interface=ppp0', 'bind-interfaces', 'dhcp-range=192.168.42.0,static,255.255.255.0', ...DNSMASQ_OPTIONS]);
  await dm.ready;
  const ref = await askAll(cl);
  await dm.proc.stop();

  const sl = await startSluice(lab, gw, sluiceCfg(['ppp*']));
  const got = await askAll(cl);

  // dhcpcd: the classless routes it prints equal the configured ones, under both servers.
  assert.match(ref.dhcpcd, new RegExp(`new_classless_static_routes='${ROUTES_TEXT}'`), `dnsmasq reference:\n${ref.dhcpcd}`);
  assert.match(got.dhcpcd, new RegExp(`new_classless_static_routes='${ROUTES_TEXT}'`), got.dhcpcd);
  assert.match(got.dhcpcd, /new_domain_name='vpn\.example'/);
  assert.match(got.dhcpcd, /new_dhcp_server_identifier='192\.168\.42\.1'/);
  assert.doesNotMatch(got.dhcpcd, /new_routers=/, 'RFC 3442: no option 3 beside a requested 121');
  assert.match(got.dhcping, /Got answer from: 192\.168\.42\.1/, got.dhcping);

  // nmap dhcp-discover (unicast INFORM to 192.168.42.1): the configured values, under both servers.
  // nmap asks for 3 and not 121, so sluice sends the router; dnsmasq alone adds 28 (Broadcast Address).
  const want: [string, string][] = [['DHCP Message Type', 'DHCPACK'], ['Server Identifier', '192.168.42.1'],
    ['Subnet Mask', '255.255.255.0'], ['Router', '192.168.42.1'], ['Domain Name Server', '192.168.42.1'], ['Domain Name', 'vpn.example']];
  for (const [who, n] of [['dnsmasq', ref.nmap], ['sluice', got.nmap]] as const) {
    assert.match(n.out, /67\/udp\s+open/, `${who}: nmap saw port 67 open\n${n.out}`);
    for (const [k, v] of want) assert.equal(n.fields.get(k), v, `${who}: nmap prints ${k}: ${v}\n${n.out}`);
  }
  const nmapOnlyDnsmasq = [...ref.nmap.fields.keys()].filter((k) => !got.nmap.fields.has(k));
  assert.deepEqual([...got.nmap.fields.keys()].filter((k) => !ref.nmap.fields.has(k)), [], 'nmap: nothing only sluice sent');
  assert.deepEqual(nmapOnlyDnsmasq, ['Broadcast Address'], 'nmap: dnsmasq alone adds option 28');

  // The Windows-like INFORM, option by option.
  assert.ok(ref.win && got.win, 'both servers answered the Windows-like INFORM');
  const a = optionMap(got.win), b = optionMap(ref.win);
  for (const [c, v] of a) if (b.has(c)) assert.equal(v, b.get(c), `option ${c} equal to dnsmasq's`);
  const onlyDnsmasq = [...b.keys()].filter((c) => !a.has(c)).sort((x, y) => x - y);
  const onlySluice = [...a.keys()].filter((c) => !b.has(c));
  t.diagnostic(`dnsmasq order ${codes(ref.win).join(',')}; sluice order ${codes(got.win).join(',')}; only dnsmasq: ${onlyDnsmasq.join(',')}; only sluice: ${onlySluice.join(',')}`);
  assert.deepEqual(onlySluice, []);
  for (const c of onlyDnsmasq) assert.ok([3, 28].includes(c), `deliberate differences are 3 (RFC 3442) and 28 only, got ${c}`);
  assert.deepEqual(codes(got.win), [53, 54, 1, 6, 15, 121, 249]);
  const w = got.win;
  assert.equal(w.dst, '192.168.42.10'); assert.equal(w.src, '192.168.42.1'); assert.equal(w.dport, 68);
  assert.equal(w.yiaddr, '0.0.0.0'); assert.equal(w.ciaddr, '192.168.42.10');
  assert.ok(w.length >= 300);
  for (const r of [got.win, got.only249, got.noPrl, got.ciaddr0]) {
    for (const never of [51, 58, 59]) assert.ok(!codes(r).includes(never), `never option ${never}`);
  }
  // Variants.
  assert.deepEqual(codes(got.only249), [53, 54, 1, 3, 249]);
  assert.deepEqual(codes(got.noPrl), [53, 54, 1, 3, 6, 15, 121, 249]);
  assert.ok(got.ciaddr0, 'ciaddr 0: answered to the IP source');
  assert.equal(got.ciaddr0!.dst, '192.168.42.10');
  assert.ok(await sl.counter('dhcp.inform.answered') >= 5);
  await sl.stop();
});

test('unknown interface: an INFORM on an interface sluice is not configured for is left alone', { skip: labSkipReason(), timeout: 60000 }, async (t) => {
  const lab = await Lab.create('dhunk');
  t.after(() => lab.cleanup());
  const { gw, cl } = await p2p(lab);
  // Rules for ppp0 are installed but the stage only answers on ipsec*: nothing comes back.
  await gw.exec(['iptables', '-t', 'mangle', '-A', 'INPUT', '-i', 'ppp0', '-p', 'udp', '--dport', '67', '-j', 'NFQUEUE', '--queue-num', '0']);
  const sl = await startSluice(lab, gw, sluiceCfg(['ipsec*']));
  const r = await peer(cl, ['inform', 'eth0', '192.168.42.10', '255.255.255.255', '192.168.42.10', '--timeout', '1.5']);
  assert.equal(r, null);
  assert.equal(await sl.counter('dhcp.inform.answered'), 0);
  await sl.stop();
});

test('shared address: INFORM on eth0 is answered through eth0 (dnsmasq leaks it into the tunnel)', { skip: labSkipReason(), timeout: 90000 }, async (t) => {
  const lab = await Lab.create('dhsh');
  t.after(() => lab.cleanup());
  const gw = lab.ns('gw'), lan = lab.ns('lan'), tun = lab.ns('tun');
  await lab.link(lan, 'eth0', gw, 'eth0');
  await lab.link(tun, 'eth0', gw, 'ppp0');
  // eth0 and the tunnel share 10.9.0.1; the tunnel's /32 peer route covers the LAN client's address.
  await gw.sh(`ip addr add 10.9.0.1/24 dev eth0 && ip addr add 10.9.0.1 peer 10.9.0.50/32 dev ppp0
    sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.ppp0.rp_filter=0`);
  await lan.sh('ip link set eth0 address 02:00:00:00:00:0c && ip addr add 10.9.0.50/24 dev eth0');
  await tun.sh('ip addr add 10.9.0.50 peer 10.9.0.1/32 dev eth0');
  const opts = ['dhcp-range=10.9.0.0,static,255.255.255.0', 'dhcp-option=121,10.20.0.0/16,10.9.0.1'];

  const run = async (label: string): Promise<{ reply: Reply | null; onEth0: number; onPpp0: number }> => {
    const c1 = await capture(lab, gw, 'eth0', `${label}-eth0`, 'udp dst port 68');
    const c2 = await capture(lab, gw, 'ppp0', `${label}-ppp0`, 'udp dst port 68');
    const reply = await peer(lan, ['inform', 'eth0', '10.9.0.50', '255.255.255.255', '10.9.0.50', '--prl', '1,121', '--timeout', '2']);
    const [t1, t2] = [await c1.stop(), await c2.stop()];
    const n = (s: string): number => (s.match(/DHCP-Message.*ACK/g) ?? []).length;
    return { reply, onEth0: n(t1), onPpp0: n(t2) };
  };

  const dm = startDnsmasq(lab, gw, 'dnsmasq', ['interface=eth0', 'interface=ppp0', ...opts]);
  await dm.ready;
  const control = await run('dnsmasq');
  await dm.proc.stop();
  t.diagnostic(`dnsmasq: ACKs on eth0 ${control.onEth0}, on ppp0 ${control.onPpp0}, client got ${control.reply ? 'a reply' : 'nothing'}`);
  assert.equal(control.onPpp0, 1, 'control: dnsmasq (routing picks the interface) sends the ACK into the tunnel');
  assert.equal(control.reply, null);

  const sl = await startSluice(lab, gw, { inform: { interfaces: ['eth0', 'ppp*'], scopes: [{ classless_routes: [{ destination: '10.20.0.0/16', router: '10.9.0.1' }] }] } });
  const r = await run('sluice');
  assert.equal(r.onEth0, 1, 'sluice: the ACK leaves eth0');
  assert.equal(r.onPpp0, 0, 'sluice: nothing leaks into the tunnel');
  assert.ok(r.reply, 'the LAN client gets its ACK');
  assert.equal(r.reply!.src, '10.9.0.1');
  await sl.stop();
});

test('TUN device as the client-facing interface', { skip: labSkipReason(), timeout: 60000 }, async (t) => {
  const lab = await Lab.create('dhtun');
  t.after(() => lab.cleanup());
  const gw = lab.ns('gw');
  const tunPeer = gw.spawn(['/usr/bin/python3', '-u', PEER, 'tun', 'tun7', '10.77.0.1', '10.77.0.2', '--prl', '1,3,6,121,249']);
  await tunPeer.waitFor(/^up$/m);
  const sl = await startSluice(lab, gw, { inform: { interfaces: ['tun*'], scopes: [{ routers: ['10.77.0.1'], classless_routes: [{ destination: '10.20.0.0/16', router: '10.77.0.1' }] }] } });
  tunPeer.child.stdin!.write('go\n');
  await tunPeer.waitFor(/^\{.*\}$|^null$/m, 10000);
  const line = tunPeer.stdout.trim().split('\n').pop()!;
  const r = JSON.parse(line) as Reply | null;
  assert.ok(r, `an ACK came back through the TUN device:\n${tunPeer.output}`);
  assert.equal(r.dst, '10.77.0.2'); assert.equal(r.src, '10.77.0.1'); assert.equal(r.dport, 68);
  assert.deepEqual(codes(r), [53, 54, 121, 249]);
  await sl.stop();
});

test('10,000 garbage and truncated DHCP packets: no crash, counted drops, good INFORMs still answered', { skip: labSkipReason(), timeout: 120000 }, async (t) => {
  const lab = await Lab.create('dhgar');
  t.after(() => lab.cleanup());
  const { gw, cl } = await p2p(lab);
  const sl = await startSluice(lab, gw, sluiceCfg(['ppp*']));
  const before = await peer(cl, ['inform', 'eth0', '192.168.42.10', '192.168.42.1', '192.168.42.10']);
  assert.ok(before);
  const g = await peer<{ sent: number }>(cl, ['garbage', 'eth0', '192.168.42.1', '10000'], 60000);
  assert.equal(g.sent, 10000);
  const after = await peer(cl, ['inform', 'eth0', '192.168.42.10', '192.168.42.1', '192.168.42.10']);
  assert.ok(after, 'still answering after the garbage');
  assert.ok(sl.proc.running, 'sluice still running');
  const malformed = await sl.counter('dhcp.malformed');
  t.diagnostic(`dhcp.malformed = ${malformed}`);
  assert.ok(malformed >= 9900, `garbage counted as malformed drops: ${malformed}`);
  assert.ok(await sl.counter('dhcp.inform.answered') >= 2);
  await sl.stop();
});
