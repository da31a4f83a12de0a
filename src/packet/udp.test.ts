import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UdpPacket, udpRepr, checkUdp } from './udp';
import { Ipv4Packet } from './ipv4';
import { fromHex, ip4, toHex } from './bytes';
import { ParseError } from './errors';
import { ipv4Udp, embed } from './build';

// Hand-built datagrams 192.168.1.10 -> 192.168.1.1; checksums are checked against the full
// RFC 1071 computation (checksum.test.ts pins that one to the RFC's own example).
const SRC = ip4('192.168.1.10'), DST = ip4('192.168.1.1');

test('deconstruct a UDP header', () => {
  const b = fromHex('cf080035000b0000616263')!;
  assert.equal(checkUdp(b, 0, b.length), ParseError.NONE);
  const u = new UdpPacket(b);
  assert.equal(u.srcPort, 53000);
  assert.equal(u.dstPort, 53);
  assert.equal(u.udpLength, 11);
  assert.equal(u.checksum, 0);
  assert.equal(u.payloadLength, 3);
  assert.equal(u.verifyChecksum4(SRC, DST), true, 'zero checksum means none (RFC 768)');
});

test('construct with a checksum, verify, round trip at an offset', () => {
  const r = { srcPort: 53000, dstPort: 53, payload: fromHex('616263')! };
  const buf = new Uint8Array(64).fill(0x11);
  const n = udpRepr.encode(r, buf, 13, { src: SRC, dst: DST });
  assert.equal(n, 11);
  const u = new UdpPacket(buf, 13, n);
  assert.notEqual(u.checksum, 0);
  assert.equal(u.verifyChecksum4(SRC, DST), true);
  const d = udpRepr.decode(buf, 13, n, { src: SRC, dst: DST });
  assert.ok(d.ok);
  assert.equal(toHex(d.value.payload), '616263');
  assert.equal(buf[12], 0x11);
  assert.equal(buf[24], 0x11);
});

test('port setters keep a non-zero checksum right', () => {
  const p = ipv4Udp({ src: SRC, dst: DST }, { sport: 4500, dport: 4500, payload: fromHex('deadbeef00000001')! });
  const b = embed(p, 3);
  const u = new UdpPacket(b, 23, 16);
  u.setSrcPort(61000);
  u.setDstPort(1);
  assert.equal(u.verifyChecksum4(SRC, DST), true);
});

test('a zero checksum stays zero through port and address rewrites (RFC 768)', () => {
  const p = ipv4Udp({ src: SRC, dst: DST }, { sport: 500, dport: 500, payload: new Uint8Array(4), checksum: false });
  const u = new UdpPacket(p, 20, 12);
  u.setSrcPort(1234);
  u.adjustForAddress(SRC, ip4('203.0.113.1'));
  assert.equal(u.checksum, 0);
});

test('address change: adjustForAddress equals a full recompute', () => {
  const p = ipv4Udp({ src: SRC, dst: DST }, { sport: 500, dport: 500, payload: fromHex('0102030405')! });
  const ip = new Ipv4Packet(p);
  const u = new UdpPacket(p, 20, 13);
  const NEW = ip4('198.51.100.9');
  ip.setSrc(NEW);
  u.adjustForAddress(SRC, NEW);
  assert.equal(u.verifyChecksum4(NEW, DST), true);
  assert.equal(ip.verifyChecksum(), true);
});

test('a computed zero is sent as 0xffff', () => {
  // Find a payload word that makes the sum 0xffff so the checksum computes to 0.
  const p = ipv4Udp({ src: SRC, dst: DST }, { sport: 1, dport: 2, payload: new Uint8Array(2) });
  const u = new UdpPacket(p, 20, 10);
  const c = u.computeChecksum4(SRC, DST);
  // Adding ~c... to the payload word turns the checksum into 0 → must become 0xffff.
  p[28] = c >> 8; p[29] = c & 0xff;
  assert.equal(u.computeChecksum4(SRC, DST), 0xffff);
  u.fillChecksum4(SRC, DST);
  assert.equal(u.checksum, 0xffff);
  assert.equal(u.verifyChecksum4(SRC, DST), true);
});

test('edge: shorter than 8 bytes is truncated', () => {
  assert.equal(checkUdp(new Uint8Array(7), 0, 7), ParseError.TRUNCATED);
});
test('edge: UDP length below 8 is bad-length', () => {
  assert.equal(checkUdp(fromHex('0001000200070000')!, 0, 8), ParseError.BAD_LENGTH);
});
test('edge: UDP length beyond the IP payload is bad-length', () => {
  assert.equal(checkUdp(fromHex('000100020009000000')!, 0, 8), ParseError.BAD_LENGTH);
});
