import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ipv4Packet, ipv4Repr, checkIpv4 } from './ipv4';
import { fromHex, ip4, toHex } from './bytes';
import { ParseError } from './errors';
import { internetChecksum } from './checksum';
import { embed } from './build';

// Source: the worked example of the IPv4 header checksum (Wikipedia, "Internet checksum" /
// "IPv4 header checksum"): 192.168.0.1 -> 192.168.0.199, UDP, TTL 64, DF, total length 115.
const WIKI = fromHex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7')!;

test('deconstruct: the Wikipedia example header', () => {
  const b = new Uint8Array(115); b.set(WIKI);
  assert.equal(checkIpv4(b, 0, b.length), ParseError.NONE);
  const v = new Ipv4Packet(b, 0, b.length);
  assert.equal(v.version, 4);
  assert.equal(v.headerLength, 20);
  assert.equal(v.totalLength, 115);
  assert.equal(v.ident, 0);
  assert.equal(v.dontFragment, true);
  assert.equal(v.moreFragments, false);
  assert.equal(v.fragmentOffset, 0);
  assert.equal(v.ttl, 64);
  assert.equal(v.protocol, 17);
  assert.equal(v.checksum, 0xb861);
  assert.equal(v.src, ip4('192.168.0.1'));
  assert.equal(v.dst, ip4('192.168.0.199'));
  assert.equal(v.verifyChecksum(), true);
});

test('construct: the same header from fields', () => {
  const b = new Uint8Array(20);
  const n = ipv4Repr.encode({ src: ip4('192.168.0.1'), dst: ip4('192.168.0.199'), protocol: 17,
    payloadLength: 95, ttl: 64, dontFragment: true }, b, 0);
  assert.equal(n, 20);
  assert.equal(toHex(b), toHex(WIKI));
});

test('round trip at a non-zero offset in a larger buffer', () => {
  const r = { src: ip4('203.0.113.5'), dst: ip4('198.51.100.7'), protocol: 50, payloadLength: 12, ttl: 9,
    ident: 0x1234, dscp: 46, ecn: 1, moreFragments: true, fragmentOffset: 1480, options: fromHex('94040000')! };
  const buf = new Uint8Array(100).fill(0xee);
  const n = ipv4Repr.encode(r, buf, 37);
  assert.equal(n, 24);
  assert.equal(buf[36], 0xee);
  assert.equal(buf[37 + 24], 0xee);
  const d = ipv4Repr.decode(buf, 37, 24 + 12);
  assert.ok(d.ok);
  assert.deepEqual({ ...d.value, checksum: undefined }, { ...r, dontFragment: false, checksum: undefined, payloadLength: 12 });
});

test('setSrc/setDst/setTtl keep the header checksum right (incremental = full)', () => {
  const b = embed(WIKI, 5);
  const v = new Ipv4Packet(b, 5, 20);
  v.setSrc(ip4('203.0.113.77'));
  assert.equal(v.verifyChecksum(), true);
  v.setDst(ip4('10.1.2.3'));
  assert.equal(v.verifyChecksum(), true);
  v.setTtl(1);
  assert.equal(v.verifyChecksum(), true);
  assert.equal(v.decrementTtl(), 0);
  assert.equal(v.verifyChecksum(), true);
  v.setDscp(10); v.setIdent(0xbeef);
  assert.equal(v.verifyChecksum(), true);
  const c = v.checksum;
  v.fillChecksum();
  assert.equal(v.checksum, c);
  assert.equal(internetChecksum(b, 5, 20), 0);
  assert.equal(b[4], 0xa5);
  assert.equal(b[25], 0xa5);
});

test('edge: shorter than 20 bytes is truncated', () => {
  assert.equal(checkIpv4(WIKI, 0, 19), ParseError.TRUNCATED);
});
test('edge: version 6 in an IPv4 view is bad-version', () => {
  const b = WIKI.slice(); b[0] = 0x65;
  assert.equal(checkIpv4(b, 0, 20), ParseError.BAD_VERSION);
});
test('edge: IHL < 5 is bad-header-length', () => {
  const b = WIKI.slice(); b[0] = 0x44;
  assert.equal(checkIpv4(b, 0, 20), ParseError.BAD_HEADER_LENGTH);
});
test('edge: IHL beyond the buffer is truncated', () => {
  const b = WIKI.slice(); b[0] = 0x46;
  assert.equal(checkIpv4(b, 0, 20), ParseError.TRUNCATED);
});
test('edge: total length below the header length is bad-total-length', () => {
  const b = WIKI.slice(); b[2] = 0; b[3] = 19;
  assert.equal(checkIpv4(b, 0, 20), ParseError.BAD_TOTAL_LENGTH);
});
test('edge: total length beyond the buffer is truncated; link padding after it is fine', () => {
  assert.equal(checkIpv4(WIKI, 0, 20), ParseError.TRUNCATED);
  const b = new Uint8Array(130); b.set(WIKI);
  assert.equal(checkIpv4(b, 0, 130), ParseError.NONE);
});
test('edge: the view never reaches past the array (length beyond the array)', () => {
  assert.equal(checkIpv4(WIKI, 10, 20), ParseError.TRUNCATED);
});
test('decode reports a wrong checksum', () => {
  const b = new Uint8Array(115); b.set(WIKI); b[11] ^= 1;
  const d = ipv4Repr.decode(b);
  assert.equal(d.ok, false);
  assert.equal(!d.ok && d.error, ParseError.BAD_CHECKSUM);
});
