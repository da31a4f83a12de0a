import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dhcpConfigSchema, type DhcpConfigInput } from './config';
import { DhcpStage } from './stage';
import { dhcpRules, globToIptables } from './rules';
import { Verdict } from '../engine/stage';
import { ip4, toHex } from '../packet/bytes';
import { relayAgentInfo } from '../packet/dhcp-options';
import { Ipv4Packet } from '../packet/ipv4';
import { UdpPacket } from '../packet/udp';
import type { DhcpRepr } from '../packet/dhcp';
import { FakeServices, iface, run, udpDhcp, decodeSent, optionOf, wireCodes, opt, MAC } from '../../test/kit/dhcp';

const PPP0 = 5, PPP1 = 6, WAN0 = 2, LAN0 = 3;

function cfgWith(relay: Record<string, unknown> = {}): DhcpConfigInput {
  return {
    relay: {
      interfaces: [{ name: 'ppp*' }, { name: 'lan0', trusted: true }],
      servers: ['203.0.113.10', { address: '198.51.100.10', interface: 'wan0' }],
      agent_info: { remote_id: 'gw1' },
      ...relay,
    },
  } as DhcpConfigInput;
}

function setup(cfg: DhcpConfigInput = cfgWith()): { stage: DhcpStage; fs: FakeServices } {
  const fs = new FakeServices([
    iface('ppp0', PPP0, '192.168.42.1'), iface('ppp1', PPP1, '192.168.42.1'), iface('wan0', WAN0, '203.0.113.1'),
    iface('lan0', LAN0, '192.168.1.1'),
  ]);
  const stage = new DhcpStage(dhcpConfigSchema.parse(cfg), { routeLookup: (dst) => (dst === ip4('203.0.113.10') ? 'wan0' : null) });
  stage.init(fs);
  return { stage, fs };
}

function discover(o: Partial<DhcpRepr> = {}, extra: { code: number; data: Uint8Array }[] = []): DhcpRepr {
  return { op: 1, xid: 0x11223344, flags: 0, chaddr: MAC, options: [opt(53, 1), opt(55, 1, 3, 6), ...extra], ...o };
}

function subs(d: DhcpRepr): Record<number, string> {
  const v = optionOf(d, 82);
  if (!v) return {};
  const r = relayAgentInfo.decode(v, 0, v.length);
  assert.ok(r.ok);
  return Object.fromEntries(r.value.map((s) => [s.code, toHex(s.data)]));
}

const hex = (s: string): string => toHex(new TextEncoder().encode(s));

test('request: giaddr set, hops + 1, 82 (circuit-id, remote-id) last, to every server from giaddr:67', () => {
  const { stage, fs } = setup();
  const r = run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, discover()), PPP0);
  assert.equal(r.verdict, Verdict.ANSWERED);
  assert.equal(fs.sent.length, 2);
  for (const [i, dst] of [[0, '203.0.113.10'], [1, '198.51.100.10']] as const) {
    const s = fs.sent[i]!;
    assert.equal(s.ifindex, WAN0);
    const ipv = new Ipv4Packet(s.packet);
    assert.ok(ipv.verifyChecksum());
    assert.ok(new UdpPacket(s.packet, 20, s.packet.length - 20).verifyChecksum4(ipv.src, ipv.dst));
    const a = decodeSent(s.packet);
    assert.equal(a.src, ip4('192.168.42.1')); assert.equal(a.dst, ip4(dst));
    assert.equal(a.sport, 67); assert.equal(a.dport, 67);
    assert.equal(a.dhcp.giaddr, ip4('192.168.42.1')); assert.equal(a.dhcp.hops, 1); assert.equal(a.dhcp.xid, 0x11223344);
    assert.deepEqual(wireCodes(s.packet, 28), [53, 55, 82]);
    assert.deepEqual(subs(a.dhcp), { 1: hex('ppp0'), 2: hex('gw1') });
  }
  assert.equal((stage.stats().counters as Record<string, number>)['dhcp.relay.forwarded'], 2);
});

test('request: a non-zero giaddr is never overwritten; hop limit', () => {
  const { stage, fs } = setup();
  run(stage, fs, udpDhcp('192.168.1.254', '192.168.1.1', 67, 67, discover({ giaddr: ip4('192.168.1.254'), hops: 3 })), LAN0);
  const a = decodeSent(fs.sent[0]!.packet);
  assert.equal(a.dhcp.giaddr, ip4('192.168.1.254'));
  assert.equal(a.dhcp.hops, 4);
  assert.equal(a.src, ip4('203.0.113.1'), 'not our giaddr: from the server-side interface');
  const r = run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, discover({ hops: 10 })), PPP0);
  assert.equal(r.reason, 'dhcp.relay.hop_limit');
  assert.equal(run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, discover({ hops: 9 })), PPP0).verdict, Verdict.ANSWERED);
});

test('option 82 already present: untrusted rule and the four policies', () => {
  const theirs = { code: 82, data: Uint8Array.of(1, 3, 0x61, 0x62, 0x63) };
  const untrusted = setup();
  assert.equal(run(untrusted.stage, untrusted.fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, discover({}, [theirs])), PPP0).reason, 'dhcp.relay.untrusted_82');
  const expect: Record<string, Record<number, string> | 'drop'> = {
    forward: { 1: '616263' },
    replace: { 1: hex('lan0'), 2: hex('gw1') },
    append: { 1: hex('lan0'), 2: hex('gw1') }, // RFC 3396: the instances concatenate (subs() keeps the last circuit-id; full bytes below)
    discard: 'drop',
  };
  for (const [policy, want] of Object.entries(expect)) {
    const { stage, fs } = setup(cfgWith({ agent_info: { remote_id: 'gw1', policy } }));
    const r = run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, discover({}, [theirs])), LAN0);
    if (want === 'drop') { assert.equal(r.reason, 'dhcp.relay.has_82'); continue; }
    assert.equal(r.verdict, Verdict.ANSWERED, policy);
    const d = decodeSent(fs.sent[0]!.packet).dhcp;
    assert.deepEqual(subs(d), want, policy);
    if (policy === 'append') assert.equal(toHex(optionOf(d, 82)!), `0103616263${toHex(Uint8Array.of(1, 4))}${hex('lan0')}0203${hex('gw1')}`);
  }
});

test('link-selection, server-id-override and a configured giaddr / circuit-id', () => {
  const { stage, fs } = setup(cfgWith({
    interfaces: [{ name: 'ppp0', giaddr: '203.0.113.1', circuit_id: 'vpn-a', link_selection: '192.168.42.0', server_id_override: true }],
  }));
  run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, discover()), PPP0);
  const a = decodeSent(fs.sent[0]!.packet);
  assert.equal(a.dhcp.giaddr, ip4('203.0.113.1'));
  assert.deepEqual(subs(a.dhcp), { 1: hex('vpn-a'), 2: hex('gw1'), 5: 'c0a82a00', 11: 'cb007101' });
});

function offer(o: Partial<DhcpRepr>, with82: boolean | string = true, type = 2, remote = 'gw1'): DhcpRepr {
  const options = [opt(53, type), opt(54, 203, 0, 113, 10), opt(1, 255, 255, 255, 0), opt(51, 0, 0, 14, 16)];
  const circuit = new TextEncoder().encode(typeof with82 === 'string' ? with82 : 'ppp1');
  const rid = new TextEncoder().encode(remote);
  if (with82 !== false) options.push({ code: 82, data: Uint8Array.of(1, circuit.length, ...circuit, 2, rid.length, ...rid) });
  return { op: 2, xid: 0x11223344, hops: 1, chaddr: MAC, giaddr: ip4('192.168.42.1'), yiaddr: ip4('192.168.42.10'), options, ...o };
}

test('reply: the circuit-id picks the interface among ones sharing an address; 82 stripped; unicast to chaddr', () => {
  const { stage, fs } = setup();
  run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, discover({ xid: 1 })), PPP0);
  run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, discover({ xid: 0x11223344 })), PPP1);
  fs.sent.length = 0;
  const r = run(stage, fs, udpDhcp('203.0.113.10', '192.168.42.1', 67, 67, offer({})), WAN0);
  assert.equal(r.verdict, Verdict.ANSWERED);
  const s = fs.sent[0]!;
  assert.equal(s.kind, 'l2'); assert.equal(s.ifindex, PPP1); assert.deepEqual(s.mac, MAC);
  const a = decodeSent(s.packet);
  assert.equal(a.dst, ip4('192.168.42.10')); assert.equal(a.dport, 68); assert.equal(a.sport, 67); assert.equal(a.src, ip4('192.168.42.1'));
  assert.equal(optionOf(a.dhcp, 82), undefined);
  assert.deepEqual(wireCodes(s.packet, 28), [53, 54, 1, 51]);
  assert.equal(a.dhcp.yiaddr, ip4('192.168.42.10'));
});

test('reply: broadcast flag → broadcast; NAK → broadcast; ciaddr (relayed INFORM) → ciaddr; no 82 → by xid', () => {
  const { stage, fs } = setup(cfgWith({ agent_info: { enabled: false } }));
  run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, discover({ xid: 0x11223344 })), PPP0);
  fs.sent.length = 0;
  run(stage, fs, udpDhcp('203.0.113.10', '192.168.42.1', 67, 67, offer({ flags: 0x8000 }, false)), WAN0);
  run(stage, fs, udpDhcp('203.0.113.10', '192.168.42.1', 67, 67, offer({ yiaddr: 0 }, false, 6)), WAN0);
  run(stage, fs, udpDhcp('203.0.113.10', '192.168.42.1', 67, 67, offer({ ciaddr: ip4('192.168.42.10'), yiaddr: 0 }, false, 5)), WAN0);
  assert.deepEqual(fs.sent.map((s) => [s.kind, s.ifindex, decodeSent(s.packet).dst]), [
    ['ip', PPP0, 0xffffffff], ['ip', PPP0, 0xffffffff], ['ip', PPP0, ip4('192.168.42.10')],
  ]);
});

test('reply: unicast on an interface without a hardware address goes by IP (point-to-point / TUN)', () => {
  const fs = new FakeServices([iface('tun0', 7, '192.168.42.1', false), iface('wan0', WAN0, '203.0.113.1')]);
  const stage = new DhcpStage(dhcpConfigSchema.parse({ relay: { interfaces: [{ name: 'tun*' }], servers: [{ address: '203.0.113.10', interface: 'wan0' }] } }));
  stage.init(fs);
  run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, discover()), 7);
  fs.sent.length = 0;
  const bare = new Uint8Array([1, 4, ...new TextEncoder().encode('tun0')]);
  run(stage, fs, udpDhcp('203.0.113.10', '192.168.42.1', 67, 67, { ...offer({}, false), options: [...offer({}, false).options, { code: 82, data: bare }] }), WAN0);
  assert.equal(fs.sent[0]!.kind, 'ip');
  assert.equal(fs.sent[0]!.ifindex, 7);
});

test('reply that matches no client interface is a counted drop; garbage is a counted drop', () => {
  const { stage, fs } = setup();
  const r = run(stage, fs, udpDhcp('203.0.113.10', '192.0.2.99', 67, 67, offer({ giaddr: ip4('192.0.2.99'), xid: 9 }, false)), WAN0);
  assert.equal(r.reason, 'dhcp.relay.reply_unknown');
  const off = setup(cfgWith({ agent_info: { enabled: false } }));
  assert.equal(run(off.stage, off.fs, udpDhcp('203.0.113.10', '192.0.2.99', 67, 67, offer({ giaddr: ip4('192.0.2.99'), xid: 9 }, false)), WAN0).reason, 'dhcp.relay.reply_unknown');
  const junk = new Uint8Array(260); junk[0] = 1;
  assert.equal(run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, junk), PPP0).reason, 'dhcp.malformed');
});

test('rules: INPUT NFQUEUE per interface glob, server replies, dedup', () => {
  assert.equal(globToIptables('ppp*'), 'ppp+');
  assert.equal(globToIptables('eth0'), 'eth0');
  assert.equal(globToIptables('ipsec?'), null);
  const rs = dhcpRules(dhcpConfigSchema.parse({
    inform: { interfaces: ['ppp*', 'ipsec?'], scopes: [{ dns_servers: ['192.0.2.1'] }] },
    relay: { interfaces: [{ name: 'ppp*' }], servers: ['203.0.113.10'], queue: 0 },
  }));
  const lines = rs.iptables.map((r) => `${r.table} ${r.chain} ${r.args.join(' ')}`);
  assert.deepEqual(lines, [
    'mangle INPUT -i ppp+ -p udp --dport 67 -j NFQUEUE --queue-num 0 --queue-bypass',
    'mangle INPUT -p udp --dport 67 -j NFQUEUE --queue-num 0 --queue-bypass',
    'mangle INPUT -s 203.0.113.10/32 -p udp --sport 67 --dport 67 -j NFQUEUE --queue-num 0 --queue-bypass',
  ]);
  const two = dhcpRules(dhcpConfigSchema.parse(cfgWith())).iptables.map((r) => r.args.join(' ')).filter((a) => a.includes('--sport 67'));
  assert.deepEqual(two, [
    '-s 203.0.113.10/32 -p udp --sport 67 --dport 67 -j NFQUEUE --queue-num 0 --queue-bypass',
    '-i wan0 -s 198.51.100.10/32 -p udp --sport 67 --dport 67 -j NFQUEUE --queue-num 0 --queue-bypass',
  ], 'replies captured from the configured servers only');
});

test('config: errors name the field', () => {
  const bad = dhcpConfigSchema.safeParse({ inform: { interfaces: ['ppp*'], scopes: [{ options: [{ code: 51, u32: 3600 }], classless_default_route: true }] } });
  assert.ok(!bad.success);
  const msgs = bad.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  assert.ok(msgs.some((m) => m.includes('options.0.code') && m.includes('51')), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.includes('classless_default_route')), msgs.join('\n'));
  assert.ok(!dhcpConfigSchema.safeParse({}).success);
  assert.ok(!dhcpConfigSchema.safeParse({ relay: { interfaces: [{ name: 'ppp*' }], servers: ['300.1.1.1'] } }).success);
});

test('reply trust: only a configured server, on the interface that reaches it, with our giaddr and our 82', () => {
  const { stage, fs } = setup();
  run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, discover({ xid: 7 })), PPP0);
  fs.sent.length = 0;
  const forged = (o: Partial<DhcpRepr>, c: boolean | string = 'ppp0', remote = 'gw1'): Uint8Array =>
    udpDhcp('192.168.42.11', '192.168.42.1', 67, 67, offer({ xid: 7, ...o }, c, 2, remote));
  // A VPN client on ppp1 answering for ppp0's client (the attack from issue 11): not a server.
  assert.equal(run(stage, fs, forged({}), PPP1).reason, 'dhcp.relay.reply_not_server');
  // Spoofing the server's address from a client interface: wrong arrival interface.
  const spoofed = udpDhcp('203.0.113.10', '192.168.42.1', 67, 67, offer({ xid: 7 }, 'ppp0'));
  assert.equal(run(stage, fs, spoofed, PPP1).reason, 'dhcp.relay.reply_not_server');
  // A server on its own interface but the wrong source port, or a second server on the other's interface.
  assert.equal(run(stage, fs, udpDhcp('203.0.113.10', '192.168.42.1', 68, 67, offer({ xid: 7 }, 'ppp0')), WAN0).reason, 'dhcp.relay.reply_not_server');
  assert.equal(run(stage, fs, udpDhcp('198.51.100.10', '192.168.42.1', 67, 67, offer({ xid: 7 }, 'ppp0')), LAN0).reason, 'dhcp.relay.reply_not_server');
  // From the server, but echoing an 82 that is not ours, for a transaction not relayed from there, or a foreign giaddr.
  const fromServer = (o: Partial<DhcpRepr>, c: boolean | string = 'ppp0', remote = 'gw1'): Uint8Array =>
    udpDhcp('203.0.113.10', '192.168.42.1', 67, 67, offer({ xid: 7, ...o }, c, 2, remote));
  assert.equal(run(stage, fs, fromServer({}, 'ppp0', 'evil'), WAN0).reason, 'dhcp.relay.reply_bad_82', 'remote-id must be ours');
  assert.equal(run(stage, fs, fromServer({}, 'ppp9'), WAN0).reason, 'dhcp.relay.reply_bad_82', 'unknown circuit');
  assert.equal(run(stage, fs, fromServer({ xid: 8 }), WAN0).reason, 'dhcp.relay.reply_bad_82', 'xid never relayed from ppp0');
  assert.equal(run(stage, fs, fromServer({}, 'ppp1'), WAN0).reason, 'dhcp.relay.reply_bad_82', 'xid 7 came from ppp0, not ppp1');
  assert.equal(run(stage, fs, fromServer({}, false), WAN0).reason, 'dhcp.relay.reply_bad_82', 'agent_info on: our 82 must come back');
  assert.equal(run(stage, fs, fromServer({ giaddr: ip4('192.168.1.1') }), WAN0).reason, 'dhcp.relay.reply_bad_giaddr');
  assert.equal(fs.sent.length, 0, 'nothing relayed to a client');
  assert.equal(run(stage, fs, fromServer({}), WAN0).verdict, Verdict.ANSWERED);
  assert.equal(fs.sent.length, 1);
  assert.equal(fs.sent[0]!.ifindex, PPP0);
  // A client-supplied 82 (giaddr set by the client, policy forward) forwarded untouched cannot steer the reply.
  const trickReq = udpDhcp('192.168.42.11', '192.168.42.1', 67, 67, discover({ xid: 9, giaddr: ip4('192.168.42.1') },
    [{ code: 82, data: Uint8Array.of(1, 4, ...new TextEncoder().encode('ppp0'), 2, 3, ...new TextEncoder().encode('gw1')) }]));
  assert.equal(run(stage, fs, trickReq, PPP1).verdict, Verdict.ANSWERED);
  assert.equal(run(stage, fs, fromServer({ xid: 9 }), WAN0).reason, 'dhcp.relay.reply_bad_82');
});

test('the INFORM responder never answers a BOOTREPLY', () => {
  const fs = new FakeServices([iface('ppp0', PPP0, '192.168.42.1')]);
  const stage = new DhcpStage(dhcpConfigSchema.parse({ inform: { interfaces: ['ppp*'], scopes: [{ dns_servers: ['192.0.2.53'] }] } }));
  stage.init(fs);
  const r = run(stage, fs, udpDhcp('192.168.42.10', '192.168.42.1', 68, 67, { ...offer({ ciaddr: ip4('192.168.42.10') }, false, 8) }), PPP0);
  assert.notEqual(r.verdict, Verdict.ANSWERED);
  assert.equal(fs.sent.length, 0);
});
