import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dhcpConfigSchema, type DhcpConfigInput } from './config';
import { DhcpStage } from './stage';
import { Verdict } from '../engine/stage';
import { ip4, toHex } from '../packet/bytes';
import { capturedPackets, udpPayload } from '../../test/kit/packet';
import { Ipv4Packet } from '../packet/ipv4';
import { UdpPacket } from '../packet/udp';
import { dhcpBytes } from '../packet/build';
import { decodeClasslessRoutes } from '../packet/dhcp-options';
import { FakeServices, iface, run, windowsInform, udpDhcp, decodeSent, optionOf, wireCodes, opt, MAC } from '../../test/kit/dhcp';

// The same option values dnsmasq served in test/captures/dhcp-inform-ack.pcap (make-dhcp.sh).
const BASE: DhcpConfigInput = {
  inform: {
    interfaces: ['ppp*', 'eth0'],
    relay_interfaces: ['lan0'],
    scopes: [{
      name: 'vpn',
      match: { interfaces: ['ppp*', 'eth0', 'lan0'] },
      subnet_mask: '255.255.255.0',
      routers: ['10.9.0.1'],
      dns_servers: ['10.9.0.1'],
      domain_name: 'lab.example',
      classless_routes: [
        { destination: '10.20.0.0/16', router: '10.9.0.1' },
        { destination: '192.168.77.0/24', router: '10.9.0.254' },
      ],
      classless_default_route: true,
    }],
  },
};
const PPP0 = 5, ETH0 = 2, TUN0 = 7, LAN0 = 3, ETH9 = 9;

function setup(cfg: DhcpConfigInput = BASE): { stage: DhcpStage; fs: FakeServices } {
  const fs = new FakeServices([
    iface('ppp0', PPP0, '10.9.0.1'), iface('eth0', ETH0, '10.9.0.1'), iface('tun0', TUN0, null, false),
    iface('lan0', LAN0, '192.168.1.1'), iface('eth9', ETH9, '198.51.100.1'),
  ]);
  const stage = new DhcpStage(dhcpConfigSchema.parse(cfg), { routeLookup: () => null });
  stage.init(fs);
  return { stage, fs };
}

function withScope(extra: Record<string, unknown>): DhcpConfigInput {
  const c = structuredClone(BASE) as { inform: { scopes: Record<string, unknown>[] } };
  Object.assign(c.inform.scopes[0]!, extra);
  return c as DhcpConfigInput;
}

test('captured Windows-style INFORM: ACK field by field, routes equal to dnsmasq\'s bytes', () => {
  const { stage, fs } = setup();
  const cap = capturedPackets('dhcp-inform-ack.pcap');
  const dnsmasqAck = udpPayload(cap[1]!.ip);
  const r = run(stage, fs, cap[0]!.ip, PPP0);
  assert.equal(r.verdict, Verdict.ANSWERED);
  assert.equal(fs.sent.length, 1);
  const s = fs.sent[0]!;
  assert.equal(s.kind, 'ip');
  assert.equal(s.ifindex, PPP0, 'leaves through the arrival interface');
  const ipv = new Ipv4Packet(s.packet);
  assert.ok(ipv.verifyChecksum());
  const udp = new UdpPacket(s.packet, 20, s.packet.length - 20);
  assert.ok(udp.checksum !== 0 && udp.verifyChecksum4(ipv.src, ipv.dst), 'UDP checksum');
  const a = decodeSent(s.packet);
  assert.equal(a.src, ip4('10.9.0.1'));
  assert.equal(a.dst, ip4('10.9.0.50'), 'to ciaddr');
  assert.equal(a.sport, 67); assert.equal(a.dport, 68);
  const d = a.dhcp;
  assert.equal(d.op, 2); assert.equal(d.htype, 1); assert.equal(d.hops, 0);
  assert.equal(d.xid, 0x5a5a1234); assert.equal(d.flags, 0); assert.equal(d.secs, 0);
  assert.equal(d.ciaddr, ip4('10.9.0.50')); assert.equal(d.yiaddr, 0); assert.equal(d.siaddr, 0); assert.equal(d.giaddr, 0);
  assert.deepEqual(d.chaddr, MAC);
  assert.ok(s.packet.length - 28 >= 300, 'padded to 300');
  // 53, 54, netmask, then 55's order (3 left out: 121 was requested, RFC 3442), 82 none.
  assert.deepEqual(wireCodes(s.packet, 28), [53, 54, 1, 6, 15, 121, 249]);
  assert.deepEqual(optionOf(d, 53), Uint8Array.of(5));
  assert.deepEqual(optionOf(d, 54), Uint8Array.of(10, 9, 0, 1));
  assert.deepEqual(optionOf(d, 1), Uint8Array.of(255, 255, 255, 0));
  for (const never of [3, 51, 58, 59, 82]) assert.equal(optionOf(d, never), undefined, `no option ${never}`);
  const ref = (code: number): string => {
    let i = 240; while (dnsmasqAck[i] !== code) i += 2 + dnsmasqAck[i + 1]!;
    return toHex(dnsmasqAck, i + 2, dnsmasqAck[i + 1]!);
  };
  for (const c of [6, 15, 121, 249]) assert.equal(toHex(optionOf(d, c)!), ref(c), `option ${c} equals dnsmasq's`);
  assert.equal(fs.counter('dhcp.inform.answered'), 1);
});

test('option 55 with only 249 (Windows XP style): 3 stays, no 121', () => {
  const { stage, fs } = setup();
  run(stage, fs, udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, windowsInform([1, 3, 249])), PPP0);
  assert.deepEqual(wireCodes(fs.sent[0]!.packet, 28), [53, 54, 1, 3, 249]);
});

test('routers_with_classless: 3 sent beside a requested 121', () => {
  const { stage, fs } = setup(withScope({ routers_with_classless: true }));
  run(stage, fs, udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, windowsInform([121, 3, 6])), PPP0);
  assert.deepEqual(wireCodes(fs.sent[0]!.packet, 28), [53, 54, 1, 121, 3, 6]);
});

test('no option 55: every configured option, default route inside 121', () => {
  const { stage, fs } = setup();
  run(stage, fs, udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, windowsInform(null)), PPP0);
  const s = fs.sent[0]!;
  assert.deepEqual(wireCodes(s.packet, 28), [53, 54, 1, 3, 6, 15, 121, 249]);
  const v = optionOf(decodeSent(s.packet).dhcp, 121)!;
  const routes = decodeClasslessRoutes(v, 0, v.length);
  assert.ok(routes.ok);
  assert.deepEqual(routes.value.at(-1), { destination: 0, prefixLength: 0, router: ip4('10.9.0.1') });
});

test('extra options by code (typed and hex) go out when requested', () => {
  const { stage, fs } = setup(withScope({ options: [{ code: 252, text: 'http://wpad.example/wpad.dat' }, { code: 26, u16: 1400 }, { code: 43, hex: '01:04:00:00:00:01' }, { code: 44, ipv4: '10.9.0.2' }] }));
  run(stage, fs, udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, windowsInform([252, 26, 43, 44, 200])), PPP0);
  const d = decodeSent(fs.sent[0]!.packet).dhcp;
  assert.deepEqual(wireCodes(fs.sent[0]!.packet, 28), [53, 54, 1, 252, 26, 43, 44]);
  assert.deepEqual(optionOf(d, 26), Uint8Array.of(0x05, 0x78));
  assert.deepEqual(optionOf(d, 43), Uint8Array.of(1, 4, 0, 0, 0, 1));
  assert.equal(new TextDecoder().decode(optionOf(d, 252)), 'http://wpad.example/wpad.dat');
});

test('RFC 3396: a 55 split in two instances is concatenated; a >255-byte 121 is split', () => {
  const routes = Array.from({ length: 40 }, (_, i) => ({ destination: `10.${i}.0.0/16`, router: '10.9.0.1' }));
  const { stage, fs } = setup(withScope({ classless_routes: routes }));
  const req = windowsInform(null);
  const raw = dhcpBytes(req);
  // Append two 55 instances by hand before End: [3, 121] then [249].
  let p = 240; while (raw[p] !== 255) p += 2 + raw[p + 1]!;
  const two = Uint8Array.of(55, 2, 3, 121, 55, 1, 249, 255);
  raw.set(two, p);
  run(stage, fs, udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, raw), PPP0);
  const s = fs.sent[0]!;
  const codes = wireCodes(s.packet, 28);
  const n121 = codes.filter((c) => c === 121).length;
  assert.ok(n121 >= 2, `121 split into ${n121} instances`);
  assert.ok(!codes.includes(3));
  const v = optionOf(decodeSent(s.packet).dhcp, 121)!;
  const dec = decodeClasslessRoutes(v, 0, v.length);
  assert.ok(dec.ok);
  assert.equal(dec.value.length, 41);
});

test('ciaddr 0: to the IP source; ciaddr 0 and source 0: counted drop', () => {
  const { stage, fs } = setup();
  run(stage, fs, udpDhcp('10.9.0.77', '255.255.255.255', 68, 67, windowsInform([1, 3], { ciaddr: 0 })), PPP0);
  assert.equal(decodeSent(fs.sent[0]!.packet).dst, ip4('10.9.0.77'));
  const r = run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, windowsInform([1, 3], { ciaddr: 0 })), PPP0);
  assert.equal(r.verdict, Verdict.DROP);
  assert.equal(r.reason, 'dhcp.inform.no_destination');
  assert.equal(fs.sent.length, 1);
});

test('relayed INFORM (giaddr set) on a relay interface: to giaddr:67, hops kept, 82 echoed', () => {
  const { stage, fs } = setup();
  const rai = [1, 4, 0x70, 0x70, 0x70, 0x30, 2, 2, 0xab, 0xcd];
  const req = windowsInform([1, 3, 121], { giaddr: ip4('192.168.1.254'), hops: 1 });
  req.options.push(opt(82, ...rai));
  run(stage, fs, udpDhcp('192.168.1.254', '192.168.1.1', 67, 67, req), LAN0);
  const s = fs.sent[0]!;
  assert.equal(s.ifindex, LAN0);
  const a = decodeSent(s.packet);
  assert.equal(a.dst, ip4('192.168.1.254')); assert.equal(a.dport, 67); assert.equal(a.src, ip4('192.168.1.1'));
  assert.equal(a.dhcp.giaddr, ip4('192.168.1.254')); assert.equal(a.dhcp.hops, 1);
  assert.deepEqual(optionOf(a.dhcp, 82), Uint8Array.from(rai));
  assert.equal(wireCodes(s.packet, 28).at(-1), 82, '82 last');
  // Not relayed (giaddr 0) on the relay-only interface: left alone.
  const r = run(stage, fs, udpDhcp('192.168.1.9', '255.255.255.255', 68, 67, windowsInform([1])), LAN0);
  assert.equal(r.verdict, Verdict.ACCEPT, 'passed untouched');
  assert.equal(fs.sent.length, 1);
});

test('shared address: the ACK leaves through the arrival interface', () => {
  const { stage, fs } = setup();
  run(stage, fs, udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, windowsInform([1])), ETH0);
  run(stage, fs, udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, windowsInform([1])), PPP0);
  assert.deepEqual(fs.sent.map((s) => s.ifindex), [ETH0, PPP0]);
});

test('other DHCP messages pass untouched; other interfaces and non-DHCP are not ours', () => {
  const { stage, fs } = setup();
  const disc = windowsInform([1, 3]);
  disc.options[0] = opt(53, 1);
  assert.equal(run(stage, fs, udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, disc), PPP0).verdict, Verdict.ACCEPT);
  assert.equal(run(stage, fs, udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, windowsInform([1])), ETH9).verdict, Verdict.CONTINUE);
  assert.equal(fs.sent.length, 0);
  assert.equal(fs.counter('dhcp.passed'), 1);
});

test('interface without an address: server_id from the scope; without either a counted drop', () => {
  const cfg = structuredClone(BASE) as { inform: { interfaces: string[] } };
  cfg.inform.interfaces.push('tun*');
  const a = setup(cfg as DhcpConfigInput);
  const r = run(a.stage, a.fs, udpDhcp('10.9.0.50', '10.9.0.1', 68, 67, windowsInform([1])), TUN0);
  assert.equal(r.verdict, Verdict.ACCEPT, 'tun0 is not in the scope\'s interfaces: no scope, passed');
  const c2 = structuredClone(cfg) as unknown as { inform: { scopes: Record<string, unknown>[] } };
  c2.inform.scopes[0]!.match = {};
  const b = setup(c2 as DhcpConfigInput);
  assert.equal(run(b.stage, b.fs, udpDhcp('10.9.0.50', '10.9.0.1', 68, 67, windowsInform([1])), TUN0).reason, 'dhcp.inform.no_server_id');
  c2.inform.scopes[0]!.server_id = '10.9.0.1';
  const c = setup(c2 as DhcpConfigInput);
  assert.equal(run(c.stage, c.fs, udpDhcp('10.9.0.50', '10.9.0.1', 68, 67, windowsInform([1])), TUN0).verdict, Verdict.ANSWERED);
  const sent = decodeSent(c.fs.sent[0]!.packet);
  assert.equal(sent.src, ip4('10.9.0.1'));
  assert.equal(c.fs.sent[0]!.ifindex, TUN0);
});

test('scopes by giaddr and by client subnet, first match wins', () => {
  const { stage, fs } = setup({
    inform: {
      interfaces: ['ppp*'], relay_interfaces: ['lan0'],
      scopes: [
        { match: { giaddr: ['192.168.1.0/24'] }, dns_servers: ['192.0.2.1'] },
        { match: { ciaddr: ['10.9.0.0/24'] }, dns_servers: ['192.0.2.2'] },
        { match: { interfaces: ['ppp*'] }, dns_servers: ['192.0.2.3'] },
      ],
    },
  });
  run(stage, fs, udpDhcp('192.168.1.254', '192.168.1.1', 67, 67, windowsInform([6], { giaddr: ip4('192.168.1.254') })), LAN0);
  run(stage, fs, udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, windowsInform([6])), PPP0);
  run(stage, fs, udpDhcp('10.8.0.50', '255.255.255.255', 68, 67, windowsInform([6], { ciaddr: ip4('10.8.0.50') })), PPP0);
  assert.deepEqual(fs.sent.map((s) => toHex(optionOf(decodeSent(s.packet).dhcp, 6)!)), ['c0000201', 'c0000202', 'c0000203']);
});

test('per-client rate limit', () => {
  const { stage, fs } = setup();
  const pkt = udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, windowsInform([1]));
  const v: Verdict[] = [];
  for (let i = 0; i < 12; i++) v.push(run(stage, fs, pkt, PPP0).verdict);
  assert.equal(v.filter((x) => x === Verdict.ANSWERED).length, 10);
  assert.equal(v.filter((x) => x === Verdict.DROP).length, 2);
  assert.equal((stage.stats().counters as Record<string, number>)['dhcp.inform.rate_limited'], 2);
  fs.time += 1000; // 5 per second refill
  assert.equal(run(stage, fs, pkt, PPP0).verdict, Verdict.ANSWERED);
  const other = udpDhcp('10.9.0.51', '255.255.255.255', 68, 67, windowsInform([1], { ciaddr: ip4('10.9.0.51') }));
  assert.equal(run(stage, fs, other, PPP0).verdict, Verdict.ANSWERED, 'another client has its own bucket');
});

test('malformed DHCP on a configured interface: counted drop, never a throw', () => {
  const { stage, fs } = setup();
  const good = dhcpBytes(windowsInform([1]));
  const bad1 = good.slice(); bad1[236] = 0; // magic cookie
  const bad2 = good.slice(); let p = 240; while (bad2[p] !== 255) p += 2 + bad2[p + 1]!; bad2[p] = 77; bad2[p + 1] = 250; // length past the end
  const bad3 = good.slice(0, 200);
  for (const b of [bad1, bad2, bad3]) {
    const r = run(stage, fs, udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, b), PPP0);
    assert.equal(r.verdict, Verdict.DROP);
    assert.equal(r.reason, 'dhcp.malformed');
  }
  let x = 12345;
  for (let i = 0; i < 2000; i++) {
    const b = good.slice();
    for (let k = 0; k < 6; k++) { x = (x * 1103515245 + 12345) >>> 0; b[240 + (x % 60)] = x >>> 24; }
    const r = run(stage, fs, udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, b.subarray(0, 240 + (x % 70))), PPP0);
    assert.ok([Verdict.DROP, Verdict.ANSWERED, Verdict.ACCEPT].includes(r.verdict));
    fs.time += 1000;
  }
});
