import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TcpPacket, tcpRepr, checkTcp, SYN, ACK_FLAG, tcpFlagNames } from './tcp';
import { IcmpPacket, icmpRepr, checkIcmp, ECHO_REQUEST } from './icmp';
import { Ipv6Packet, Ipv6Chain, ipv6Repr, checkIpv6 } from './ipv6';
import { Classified, classify } from './classify';
import { fromHex, ip4, toHex } from './bytes';
import { ParseError } from './errors';

const A = ip4('10.0.0.1'), B = ip4('10.0.0.2');

// A SYN shaped like Linux's (options MSS 1460, SACK-permitted, timestamps, NOP, window scale 7);
// the checksum is checked against the full RFC 1071 computation.
test('TCP: construct, deconstruct, round trip at an offset, flags', () => {
  const r = { srcPort: 41234, dstPort: 80, seq: 0x11223344, ack: 0, flags: SYN, window: 64240,
    options: fromHex('020405b40402080a000000010000000001030307')!, payload: new Uint8Array(0) };
  const buf = new Uint8Array(100).fill(0x77);
  const n = tcpRepr.encode(r, buf, 11, { src: A, dst: B });
  assert.equal(n, 40);
  assert.equal(checkTcp(buf, 11, n), ParseError.NONE);
  const v = new TcpPacket(buf, 11, n);
  assert.equal(v.headerLength, 40);
  assert.equal(v.flags, SYN);
  assert.equal(v.verifyChecksum4(A, B), true);
  const d = tcpRepr.decode(buf, 11, n, { src: A, dst: B });
  assert.ok(d.ok);
  assert.equal(toHex(d.value.options!), toHex(r.options));
  assert.equal(d.value.seq, r.seq);
  assert.deepEqual(tcpFlagNames(SYN | ACK_FLAG), ['SYN', 'ACK']);
  v.setSrcPort(1); v.setDstPort(2);
  assert.equal(v.verifyChecksum4(A, B), true);
  assert.equal(buf[10], 0x77);
  assert.equal(buf[51], 0x77);
});

test('TCP edges: short, data offset < 5, data offset beyond segment', () => {
  assert.equal(checkTcp(new Uint8Array(19), 0, 19), ParseError.TRUNCATED);
  const b = new Uint8Array(20); b[12] = 0x40;
  assert.equal(checkTcp(b, 0, 20), ParseError.BAD_HEADER_LENGTH);
  b[12] = 0x60;
  assert.equal(checkTcp(b, 0, 20), ParseError.BAD_HEADER_LENGTH);
});

// RFC 792 echo layout: id 0x1234, seq 1, 4 data bytes.
test('ICMP echo: construct/deconstruct, checksum, ident rewrite', () => {
  const buf = new Uint8Array(30);
  const n = icmpRepr.encode({ type: ECHO_REQUEST, code: 0, rest: 0x12340001, payload: fromHex('61616161')! }, buf, 5);
  assert.equal(n, 12);
  assert.equal(toHex(buf, 5, 12), '0800' + toHex(buf, 7, 2) + '1234000161616161');
  const v = new IcmpPacket(buf, 5, 12);
  assert.equal(v.verifyChecksum(), true);
  v.setIdent(0x9999);
  assert.equal(v.verifyChecksum(), true);
  assert.equal(v.ident, 0x9999);
  assert.equal(checkIcmp(buf, 0, 7), ParseError.TRUNCATED);
  const d = icmpRepr.decode(buf, 5, 12);
  assert.ok(d.ok);
  assert.equal(d.value.rest, 0x99990001);
});

function v6(nextHeader: number, payload: Uint8Array): Uint8Array {
  const b = new Uint8Array(40 + payload.length);
  ipv6Repr.encode({ src: fromHex('20010db8000000000000000000000001')!, dst: fromHex('20010db8000000000000000000000002')!,
    nextHeader, payloadLength: payload.length, hopLimit: 63, flowLabel: 0x12345, trafficClass: 0xb8 }, b, 0);
  b.set(payload, 40);
  return b;
}

test('IPv6: fields and extension chain (hop-by-hop, dest opts, fragment) to UDP', () => {
  const udp = fromHex('1194119400080000')!;
  // HbH (next 60, len 0: 8 bytes) + DestOpts (next 44, len 0) + Fragment (next 17, offset 0, M=1)
  const ext = fromHex('3c00010400000000' + '2c00010400000000' + '1100000100000042')!;
  const p = v6(0, new Uint8Array([...ext, ...udp]));
  assert.equal(checkIpv6(p, 0, p.length), ParseError.NONE);
  const v = new Ipv6Packet(p);
  assert.equal(v.hopLimit, 63);
  assert.equal(v.flowLabel, 0x12345);
  assert.equal(v.trafficClass, 0xb8);
  assert.equal(v.srcString, '2001:db8::1');
  const ch = v.walk(new Ipv6Chain());
  assert.equal(ch.error, ParseError.NONE);
  assert.equal(ch.proto, 17);
  assert.equal(ch.l4Offset, 64);
  assert.equal(ch.isFragment, true);
  assert.equal(ch.moreFragments, true);
  assert.equal(ch.fragmentId, 0x42);
  assert.equal(ch.headers, 3);
  const c = new Classified();
  classify(c, p, 0, p.length);
  assert.equal(c.reason, ParseError.NONE);
  assert.equal(c.ipVersion, 6);
  assert.equal(c.proto, 17);
  assert.equal(c.sport, 4500);
  assert.equal(c.l4Offset, 64);
  assert.equal(c.srcOffset, 8);
});

test('IPv6 edges: bad version, truncated payload, extension running past the end, jumbogram, later fragment', () => {
  const p = v6(6, new Uint8Array(20));
  const bad = p.slice(); bad[0] = 0x45;
  assert.equal(checkIpv6(bad, 0, bad.length), ParseError.BAD_VERSION);
  assert.equal(checkIpv6(p, 0, 50), ParseError.TRUNCATED);
  const ext = v6(0, fromHex('3b05000000000000')!); // HbH claims 48 bytes
  const c = new Classified();
  classify(c, ext, 0, ext.length);
  assert.equal(c.reason, ParseError.BAD_LENGTH);
  const jumbo = v6(0, new Uint8Array(0));
  assert.equal(checkIpv6(jumbo, 0, jumbo.length), ParseError.UNSUPPORTED);
  const later = v6(44, fromHex('1100 0100 00000001 0000000000000000')!);
  classify(c, later, 0, later.length);
  assert.equal(c.isLaterFragment, true);
  assert.equal(c.sport, 0);
  assert.equal(c.reason, ParseError.NONE);
});

test('UDP over IPv6: checksum fill/verify with the IPv6 pseudo-header; zero is not "none"', async () => {
  const { UdpPacket } = await import('./udp');
  const p = v6(17, fromHex('119411940010000001020304050607ff')!);
  const u = new UdpPacket(p, 40, 16);
  assert.equal(u.verifyChecksum6(0), false, 'zero checksum is invalid over IPv6 (RFC 8200 8.1)');
  u.fillChecksum6(0);
  assert.notEqual(u.checksum, 0);
  assert.equal(u.verifyChecksum6(0), true);
  p[50] ^= 1;
  assert.equal(u.verifyChecksum6(0), false);
});

test('describe: an IPv6 UDP packet decodes with addresses and ports', async () => {
  const { describePacket } = await import('./describe');
  const p = v6(17, fromHex('1194119400080000')!);
  const d = describePacket(p) as { ipv6: { src: string; dst: string }; udp: { dport: number }; invalid?: unknown };
  assert.equal(d.ipv6.src, '2001:db8::1');
  assert.equal(d.ipv6.dst, '2001:db8::2');
  assert.equal(d.udp.dport, 4500);
});
