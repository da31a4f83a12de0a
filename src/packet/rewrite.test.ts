import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Classified, classify } from './classify';
import { rewriteSrc4, rewriteDst4, rewriteSport, rewriteDport } from './rewrite';
import { Ipv4Packet } from './ipv4';
import { UdpPacket } from './udp';
import { TcpPacket, tcpRepr, SYN } from './tcp';
import { ip4, fromHex } from './bytes';
import { ipv4Udp, ipv4Raw, ipv4Esp, embed } from './build';

const A = ip4('192.168.1.10'), B = ip4('203.0.113.9'), N = ip4('198.51.100.1');

function classified(p: Uint8Array, off: number, len: number): Classified {
  const c = new Classified(); classify(c, p, off, len); return c;
}

test('UDP SNAT at an offset: IP and UDP checksums stay valid, Classified follows', () => {
  const p = embed(ipv4Udp({ src: A, dst: B }, { sport: 500, dport: 500, payload: fromHex('00112233445566')! }), 64);
  const c = classified(p, 64, 35);
  assert.equal(rewriteSrc4(c, p, N), true);
  assert.equal(rewriteSport(c, p, 40000), true);
  assert.equal(new Ipv4Packet(p, 64, 35).verifyChecksum(), true);
  assert.equal(new UdpPacket(p, 84, 15).verifyChecksum4(N, B), true);
  assert.equal(c.src, N);
  assert.equal(c.sport, 40000);
  const again = classified(p, 64, 35);
  assert.equal(again.src, N);
  assert.equal(again.sport, 40000);
});

test('UDP with zero checksum: rewrites keep it zero', () => {
  const p = ipv4Udp({ src: A, dst: B }, { sport: 4500, dport: 4500, payload: fromHex('01020304000000010203')!, checksum: false });
  const c = classified(p, 0, p.length);
  rewriteDst4(c, p, N);
  rewriteDport(c, p, 1);
  assert.equal(new UdpPacket(p, 20, 18).checksum, 0);
  assert.equal(new Ipv4Packet(p).verifyChecksum(), true);
});

test('TCP DNAT + port: checksums valid', () => {
  const seg = new Uint8Array(tcpRepr.encodingLength({ srcPort: 1, dstPort: 80, flags: SYN, payload: fromHex('abcdef')! }));
  tcpRepr.encode({ srcPort: 1, dstPort: 80, flags: SYN, payload: fromHex('abcdef')! }, seg, 0, { src: A, dst: B });
  const p = ipv4Raw({ src: A, dst: B, protocol: 6 }, seg);
  const c = classified(p, 0, p.length);
  assert.equal(rewriteDst4(c, p, N), true);
  assert.equal(rewriteDport(c, p, 8080), true);
  assert.equal(new TcpPacket(p, 20, seg.length).verifyChecksum4(A, N), true);
  assert.equal(new Ipv4Packet(p).verifyChecksum(), true);
});

test('ESP: address rewrite touches only the IP header; ports refused', () => {
  const p = ipv4Esp({ src: A, dst: B }, { spi: 0x1000, seq: 1, payload: new Uint8Array(16) });
  const before = p.slice(20);
  const c = classified(p, 0, p.length);
  assert.equal(rewriteSrc4(c, p, N), true);
  assert.deepEqual(p.slice(20), before);
  assert.equal(new Ipv4Packet(p).verifyChecksum(), true);
  assert.equal(rewriteSport(c, p, 1), false);
});

test('later fragment: address rewrite fixes only the IP header', () => {
  const p = ipv4Raw({ src: A, dst: B, protocol: 17, fragmentOffset: 8 }, fromHex('0102030405060708')!);
  const c = classified(p, 0, p.length);
  assert.equal(rewriteSrc4(c, p, N), true);
  assert.equal(p.slice(20).join(','), '1,2,3,4,5,6,7,8');
  assert.equal(rewriteSport(c, p, 1), false);
});

test('invalid packets are refused', () => {
  const c = classified(Uint8Array.of(0x45), 0, 1);
  assert.equal(rewriteSrc4(c, Uint8Array.of(0x45), N), false);
});
