import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Classified, classify, Kind } from './classify';
import { ip4, fromHex } from './bytes';
import { ParseError } from './errors';
import { ipv4Udp, ipv4Esp, ipv4Raw, ikeBytes, dhcpBytes, withNonEspMarker, embed } from './build';
import { MessageType } from './dhcp';

const A = ip4('198.51.100.1'), B = ip4('203.0.113.2');
const IKE_INIT = ikeBytes({ ispi: '0123456789abcdef', rspi: '0000000000000000', version: 2, exchange: 34,
  flags: 0x08, messageId: 0, payloads: [{ type: 33, body: new Uint8Array(8) }, { type: 40, body: new Uint8Array(16) }] });

function cl(p: Uint8Array, off = 0, len = p.length - off): Classified {
  const c = new Classified();
  classify(c, p, off, len);
  return c;
}

test('raw ESP (protocol 50)', () => {
  const c = cl(ipv4Esp({ src: A, dst: B }, { spi: 0xabcdef01, seq: 42, payload: new Uint8Array(32) }));
  assert.equal(c.reason, ParseError.NONE);
  assert.equal(c.kind, Kind.ESP);
  assert.equal(c.espSpi, 0xabcdef01);
  assert.equal(c.espSeq, 42);
  assert.equal(c.espOffset, 20);
  assert.equal(c.src, A);
  assert.equal(c.dst, B);
  assert.equal(c.proto, 50);
});

test('ESP-in-UDP on 4500, at an offset inside a slab', () => {
  const p = ipv4Udp({ src: A, dst: B }, { sport: 31000, dport: 4500, payload: fromHex('c0000001000000090102030405060708')! });
  const slab = embed(p, 100);
  const c = cl(slab, 100, p.length);
  assert.equal(c.kind, Kind.ESP_IN_UDP);
  assert.equal(c.espSpi, 0xc0000001);
  assert.equal(c.espSeq, 9);
  assert.equal(c.espOffset, 128);
  assert.equal(c.sport, 31000);
  assert.equal(c.l3Offset, 100);
});

test('NAT-keepalive on 4500', () => {
  const c = cl(ipv4Udp({ src: A, dst: B }, { sport: 4500, dport: 4500, payload: fromHex('ff')! }));
  assert.equal(c.kind, Kind.NAT_KEEPALIVE);
});

test('IKE on 500 and on 4500 behind the non-ESP marker', () => {
  const c = cl(ipv4Udp({ src: A, dst: B }, { sport: 500, dport: 500, payload: IKE_INIT }));
  assert.equal(c.kind, Kind.IKE);
  assert.equal(c.ikeOffset, 28);
  assert.equal(c.ikeIspiHi, 0x01234567);
  assert.equal(c.ikeIspiLo, 0x89abcdef);
  assert.equal(c.ikeRspiHi, 0);
  assert.equal(c.ikeVersion, 2);
  assert.equal(c.ikeExchange, 34);
  assert.equal(c.ikeFlags, 0x08);
  assert.equal(c.ikeNextPayload, 33);
  assert.equal(c.ikeLength, IKE_INIT.length);
  const d = cl(ipv4Udp({ src: A, dst: B }, { sport: 4500, dport: 4500, payload: withNonEspMarker(IKE_INIT) }));
  assert.equal(d.kind, Kind.IKE);
  assert.equal(d.ikeOffset, 32);
  assert.equal(d.ikeIspiLo, 0x89abcdef);
});

test('DHCPINFORM on 67 with its message type', () => {
  const dhcp = dhcpBytes({ op: 1, xid: 1, chaddr: fromHex('020000000001')!, ciaddr: A,
    options: [{ code: 53, data: Uint8Array.of(MessageType.INFORM) }] });
  const c = cl(ipv4Udp({ src: A, dst: B }, { sport: 68, dport: 67, payload: dhcp }));
  assert.equal(c.kind, Kind.DHCP);
  assert.equal(c.dhcpOffset, 28);
  assert.equal(c.dhcpOp, 1);
  assert.equal(c.dhcpMessageType, 8);
  assert.equal(c.dhcpLength, dhcp.length);
});

test('TCP ports and flags, ICMP type/code', () => {
  const tcp = fromHex('c35001bb0000000100000000501200000000 0000')!;
  const c = cl(ipv4Raw({ src: A, dst: B, protocol: 6 }, tcp));
  assert.equal(c.sport, 50000);
  assert.equal(c.dport, 443);
  assert.equal(c.tcpFlags, 0x12);
  assert.equal(c.payloadLength, 0);
  const i = cl(ipv4Raw({ src: A, dst: B, protocol: 1 }, fromHex('0800f7ff00000000')!));
  assert.equal(i.icmpType, 8);
  assert.equal(i.icmpCode, 0);
});

test('later fragments have no L4; first fragments keep UDP/ESP-in-UDP fields', () => {
  const later = cl(ipv4Raw({ src: A, dst: B, protocol: 17, fragmentOffset: 1480 }, new Uint8Array(8)));
  assert.equal(later.isFragment, true);
  assert.equal(later.isLaterFragment, true);
  assert.equal(later.sport, 0);
  assert.equal(later.reason, ParseError.NONE);
  // First fragment of a 2000-byte IKE message on 4500: UDP length says more than is present.
  const big = ikeBytes({ ispi: '1111111111111111', rspi: '2222222222222222', version: 2, exchange: 35, flags: 0x08,
    messageId: 1, payloads: [{ type: 46, next: 35, body: new Uint8Array(1960) }] });
  const full = ipv4Udp({ src: A, dst: B }, { sport: 4500, dport: 4500, payload: withNonEspMarker(big) });
  const first = full.slice(0, 1500);
  first[2] = 1500 >> 8; first[3] = 1500 & 0xff; first[6] = 0x20; // MF
  const f = cl(first);
  assert.equal(f.reason, ParseError.NONE);
  assert.equal(f.isFragment, true);
  assert.equal(f.isLaterFragment, false);
  assert.equal(f.kind, Kind.IKE);
  assert.equal(f.ikeExchange, 35);
});

test('bad inputs: reason set, no throw', () => {
  assert.equal(cl(new Uint8Array(0)).reason, ParseError.TRUNCATED);
  assert.equal(cl(Uint8Array.of(0x50)).reason, ParseError.BAD_VERSION);
  assert.equal(cl(Uint8Array.of(0x45, 0, 0)).reason, ParseError.TRUNCATED);
  const p = ipv4Udp({ src: A, dst: B }, { sport: 1, dport: 2, payload: new Uint8Array(4) });
  p[24] = 0; p[25] = 200; // UDP length beyond the packet
  assert.equal(cl(p).reason, ParseError.BAD_LENGTH);
  const e = cl(ipv4Esp({ src: A, dst: B }, { spi: 0, seq: 1, payload: new Uint8Array(4) }));
  assert.equal(e.reason, ParseError.BAD_SPI);
  assert.equal(e.kind, Kind.OTHER);
});

test('bad application headers leave kind OTHER and set appReason', () => {
  const ike = cl(ipv4Udp({ src: A, dst: B }, { sport: 500, dport: 500, payload: new Uint8Array(10) }));
  assert.equal(ike.reason, ParseError.NONE);
  assert.equal(ike.kind, Kind.OTHER);
  assert.equal(ike.appReason, ParseError.TRUNCATED);
  const bootp = new Uint8Array(300); bootp[0] = 1;
  const d = cl(ipv4Udp({ src: A, dst: B }, { sport: 68, dport: 67, payload: bootp }));
  assert.equal(d.kind, Kind.OTHER);
  assert.equal(d.appReason, ParseError.BAD_MAGIC);
});

test('every field is reset between packets', () => {
  const c = new Classified();
  classify(c, ipv4Udp({ src: A, dst: B }, { sport: 500, dport: 500, payload: IKE_INIT }), 0, 20 + 8 + IKE_INIT.length);
  const fresh = new Classified();
  const p = ipv4Raw({ src: A, dst: B, protocol: 6 }, fromHex('0001000200000000000000005000000000000000')!);
  classify(c, p, 0, p.length);
  classify(fresh, p, 0, p.length);
  assert.deepEqual(c, fresh);
});

test('classify allocates nothing: at most one (unrelated) scavenge while classifying 10M mixed packets', async () => {
  const { PerformanceObserver } = await import('node:perf_hooks');
  const { capturedPackets } = await import('../../test/kit/packet');
  const pk = [...capturedPackets('ike-esp-natt.pcap'), ...capturedPackets('dhcp-inform-ack.pcap'),
    ...capturedPackets('crafted.pcap')].map((p) => p.ip);
  pk.push(ipv4Esp({ src: 0xc6336407, dst: 0xcb007101 }, { spi: 0xc0ffee01, seq: 0xfffffff0, payload: new Uint8Array(64) }));
  const slab = new Uint8Array(pk.reduce((n, p) => n + p.length + 32, 0));
  const off: number[] = [], len: number[] = [];
  let p = 0;
  for (const x of pk) { p += 32; slab.set(x, p); off.push(p); len.push(x.length); p += x.length; }
  const offs = Int32Array.from(off), lens = Int32Array.from(len);
  const c = new Classified();
  const run = (n: number): number => {
    let k = 0;
    for (let i = 0, j = 0; i < n; i++) { classify(c, slab, offs[j]!, lens[j]!); k += c.kind; if (++j === offs.length) j = 0; }
    return k;
  };
  run(1_000_000); // let the JIT settle (tier-ups allocate)
  let scavenges = 0;
  const obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) if ((e as { detail?: { kind?: number } }).detail?.kind === 1) scavenges++; });
  obs.observe({ entryTypes: ['gc'] });
  await new Promise((r) => setTimeout(r, 10));
  scavenges = 0;
  // Even 4 B per packet would be 40 MB: many scavenges. One is tolerated for the test runner's own
  // allocations while the new space is still at its small initial size.
  run(10_000_000);
  await new Promise((r) => setTimeout(r, 10));
  obs.disconnect();
  assert.ok(scavenges <= 1, `${scavenges} scavenges`);
});
