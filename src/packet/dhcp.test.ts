import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DhcpPacket, DhcpOptionIter, dhcpRepr, checkDhcp, dhcpMessageType, optionTotalLength, OptionRegion,
  FILE, SNAME, OPTIONS, MessageType } from './dhcp';
import { decodeClasslessRoutes, encodeClasslessRoutes, describeOption } from './dhcp-options';
import { Classified, classify, Kind } from './classify';
import { ParseError } from './errors';
import { fromHex, ip4, toHex } from './bytes';
import { capturedPackets, udpPayload } from '../../test/kit/packet';

// Source: test/captures/dhcp-inform-ack.pcap, made by test/captures/make-dhcp.sh: #1 a Windows-style
// DHCPINFORM sent with scapy 2.5 (options 53, 61, 12, 60 "MSFT 5.0", 55 incl. 121/249), #2 dnsmasq
// 2.90's DHCPACK with classless routes in 121 and 249.
const cap = capturedPackets('dhcp-inform-ack.pcap');
const INFORM = udpPayload(cap[0]!.ip);
const ACK = udpPayload(cap[1]!.ip);
const MAC = fromHex('02000000000c')!;
const PRL = [1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252];
const ROUTES = [
  { destination: ip4('10.20.0.0'), prefixLength: 16, router: ip4('10.9.0.1') },
  { destination: ip4('192.168.77.0'), prefixLength: 24, router: ip4('10.9.0.254') },
  { destination: 0, prefixLength: 0, router: ip4('10.9.0.1') },
];

function walk(b: Uint8Array): { codes: number[]; error: ParseError; regions: OptionRegion[] } {
  const it = new DhcpOptionIter().reset(b, 0, b.length);
  const codes: number[] = [], regions: OptionRegion[] = [];
  let n = 0;
  while (it.next()) { codes.push(it.code); regions.push(it.region); assert.ok(++n < 10000); }
  return { codes, error: it.error, regions };
}

test('deconstruct the captured DHCPINFORM', () => {
  assert.equal(checkDhcp(INFORM, 0, INFORM.length), ParseError.NONE);
  const v = new DhcpPacket(INFORM);
  assert.equal(v.op, 1);
  assert.equal(v.htype, 1);
  assert.equal(v.hlen, 6);
  assert.equal(v.xid, 0x5a5a1234);
  assert.equal(v.ciaddr, ip4('10.9.0.50'));
  assert.equal(v.broadcast, false);
  assert.equal(toHex(INFORM, v.chaddrOffset, 6), '02000000000c');
  assert.deepEqual(walk(INFORM).codes, [53, 61, 12, 60, 55]);
  assert.equal(dhcpMessageType(new DhcpOptionIter(), INFORM, 0, INFORM.length), MessageType.INFORM);
  const d = dhcpRepr.decode(INFORM);
  assert.ok(d.ok);
  const o = Object.fromEntries(d.value.options.map((x) => [x.code, x.data]));
  assert.deepEqual(Array.from(o[55]!), PRL);
  assert.equal(toHex(o[61]!), '01' + toHex(MAC));
  assert.equal(Buffer.from(o[60]!).toString(), 'MSFT 5.0');
});

test('construct the DHCPINFORM from fields: same bytes as captured', () => {
  const r = { op: 1, xid: 0x5a5a1234, ciaddr: ip4('10.9.0.50'), chaddr: MAC, options: [
    { code: 53, data: Uint8Array.of(8) }, { code: 61, data: Uint8Array.of(1, ...MAC) },
    { code: 12, data: Buffer.from('LAB-PC') }, { code: 60, data: Buffer.from('MSFT 5.0') },
    { code: 55, data: Uint8Array.from(PRL) }] };
  const buf = new Uint8Array(INFORM.length + 30).fill(0x5a);
  const n = dhcpRepr.encode(r, buf, 9, 0);
  assert.equal(n, INFORM.length);
  assert.equal(toHex(buf, 9, n), toHex(INFORM));
  assert.equal(buf[8], 0x5a);
  assert.equal(buf[9 + n], 0x5a);
});

test('the captured DHCPACK: 121 and 249 decode to the configured routes; encoding gives the same bytes', () => {
  const d = dhcpRepr.decode(ACK);
  assert.ok(d.ok);
  const o = Object.fromEntries(d.value.options.map((x) => [x.code, x.data]));
  for (const code of [121, 249]) {
    const r = decodeClasslessRoutes(o[code]!, 0, o[code]!.length);
    assert.ok(r.ok);
    assert.deepEqual(r.value, ROUTES);
    assert.equal(toHex(encodeClasslessRoutes(ROUTES)), toHex(o[code]!));
  }
  assert.deepEqual(describeOption(121, o[121]!).value, [
    { destination: '10.20.0.0/16', router: '10.9.0.1' }, { destination: '192.168.77.0/24', router: '10.9.0.254' },
    { destination: '0.0.0.0/0', router: '10.9.0.1' }]);
  assert.equal(dhcpMessageType(new DhcpOptionIter(), ACK, 0, ACK.length), MessageType.ACK);
});

test('round trip of the ACK through the Repr at an offset', () => {
  const d = dhcpRepr.decode(ACK);
  assert.ok(d.ok);
  const buf = new Uint8Array(1000);
  const n = dhcpRepr.encode(d.value, buf, 123);
  const again = dhcpRepr.decode(buf, 123, n);
  assert.ok(again.ok);
  assert.deepEqual(again.value, d.value);
});

test('classify: both captured packets are DHCP with their message types', () => {
  const c = new Classified();
  classify(c, cap[0]!.ip, 0, cap[0]!.ip.length);
  assert.equal(c.kind, Kind.DHCP);
  assert.equal(c.dhcpMessageType, 8);
  classify(c, cap[1]!.ip, 0, cap[1]!.ip.length);
  assert.equal(c.dhcpMessageType, 5);
  assert.equal(c.dhcpOp, 2);
});

// RFC 3396: split long options and the overload regions.
test('an option longer than 255 bytes is split on encode and concatenated on decode (RFC 3396)', () => {
  const long = Uint8Array.from({ length: 600 }, (_, i) => i & 0xff);
  const b = new Uint8Array(dhcpRepr.encodingLength({ op: 2, xid: 1, chaddr: MAC, options: [{ code: 43, data: long }, { code: 53, data: Uint8Array.of(5) }] }));
  dhcpRepr.encode({ op: 2, xid: 1, chaddr: MAC, options: [{ code: 43, data: long }, { code: 53, data: Uint8Array.of(5) }] }, b);
  assert.deepEqual(walk(b).codes, [43, 43, 43, 53]);
  assert.equal(optionTotalLength(new DhcpOptionIter(), b, 0, b.length, 43), 600);
  const d = dhcpRepr.decode(b);
  assert.ok(d.ok);
  assert.deepEqual(d.value.options[0], { code: 43, data: long });
});

function overloaded(v: number): Uint8Array {
  const b = new Uint8Array(300);
  dhcpRepr.encode({ op: 2, xid: 7, chaddr: MAC, options: [{ code: 52, data: Uint8Array.of(v) }, { code: 121, data: fromHex('18c0a801')! }] }, b, 0, 300);
  // file: 53=5, 121 continued; sname: 121 continued again, then End.
  b.set(fromHex('350105' + '7905' + '0a090001' + '00' + 'ff')!, FILE);
  b.set(fromHex('7904' + '0a090001' + 'ff')!, SNAME);
  return b;
}

test('overload 3: options, then file, then sname; 121 concatenated across all three', () => {
  const b = overloaded(3);
  const w = walk(b);
  assert.deepEqual(w.codes, [52, 121, 53, 121, 121]);
  assert.deepEqual(w.regions, [OptionRegion.OPTIONS, OptionRegion.OPTIONS, OptionRegion.FILE, OptionRegion.FILE, OptionRegion.SNAME]);
  const d = dhcpRepr.decode(b);
  assert.ok(d.ok);
  const r121 = d.value.options.find((o) => o.code === 121)!.data;
  assert.equal(toHex(r121), '18c0a801' + '0a09000100' + '0a090001');
  const routes = decodeClasslessRoutes(r121, 0, r121.length);
  assert.ok(routes.ok);
  assert.deepEqual(routes.value, [{ destination: ip4('192.168.1.0'), prefixLength: 24, router: ip4('10.9.0.1') },
    { destination: 0, prefixLength: 0, router: ip4('10.9.0.1') }]);
  assert.equal(d.value.sname, undefined);
  assert.equal(d.value.file, undefined);
  assert.equal(d.value.overload, 3);
});

test('overload 1 (file only) and 2 (sname only)', () => {
  assert.deepEqual(walk(overloaded(1)).codes, [52, 121, 53, 121]);
  assert.deepEqual(walk(overloaded(2)).codes, [52, 121, 121]);
});

test('edge: overload value outside 1..3 is ignored', () => {
  assert.deepEqual(walk(overloaded(4)).codes, [52, 121]);
});

test('edge: an overload option inside file is ignored (it must be in options)', () => {
  const b = overloaded(1);
  b.set(fromHex('340103ff')!, FILE + 10); // after the 53 and 121 instances
  b[FILE + 9] = 0; // pad instead of the old End
  const w = walk(b);
  assert.deepEqual(w.codes, [52, 121, 53, 121, 52]);
});

test('edge: option length running past the options area is bad-option', () => {
  const b = new Uint8Array(OPTIONS + 4);
  dhcpRepr.encode({ op: 1, xid: 1, chaddr: MAC, options: [] }, b, 0, 0);
  b.set(fromHex('0c05616263')!.subarray(0, 4), OPTIONS);
  assert.equal(walk(b).error, ParseError.BAD_OPTION);
});

test('edge: a code byte with no room for its length is bad-option', () => {
  const b = new Uint8Array(OPTIONS + 1);
  dhcpRepr.encode({ op: 1, xid: 1, chaddr: MAC, options: [] }, b, 0, 0);
  b[OPTIONS] = 12;
  assert.equal(walk(b).error, ParseError.BAD_OPTION);
});

test('edge: missing End is tolerated; only pads is an empty option list', () => {
  const b = new Uint8Array(OPTIONS + 3);
  dhcpRepr.encode({ op: 1, xid: 1, chaddr: MAC, options: [] }, b, 0, 0);
  b.set(fromHex('350108')!, OPTIONS);
  assert.deepEqual(walk(b), { codes: [53], error: ParseError.NONE, regions: [OptionRegion.OPTIONS] });
  b.fill(0, OPTIONS);
  assert.deepEqual(walk(b).codes, []);
});

test('edge: header checks (truncated, magic, op, hlen)', () => {
  assert.equal(checkDhcp(INFORM, 0, 239), ParseError.TRUNCATED);
  const m = INFORM.slice(); m[236] = 0;
  assert.equal(checkDhcp(m, 0, m.length), ParseError.BAD_MAGIC);
  const o = INFORM.slice(); o[0] = 3;
  assert.equal(checkDhcp(o, 0, o.length), ParseError.BAD_VALUE);
  const h = INFORM.slice(); h[2] = 17;
  assert.equal(checkDhcp(h, 0, h.length), ParseError.BAD_VALUE);
});

test('edge: option 53 with length 2 makes the message type bad-option', () => {
  const b = new Uint8Array(300);
  dhcpRepr.encode({ op: 1, xid: 1, chaddr: MAC, options: [{ code: 53, data: Uint8Array.of(8, 8) }] }, b);
  assert.equal(dhcpMessageType(new DhcpOptionIter(), b, 0, b.length), -ParseError.BAD_OPTION);
});
