/**
 * Fuzzing every parser with random and mutated real packets (lab captures + builders).
 *
 * For each case the same bytes sit in two buffers whose surroundings differ (0x00 vs 0xff before and
 * after the packet). A parser that reads outside [offset, offset + length) sees different bytes in
 * the two runs, and its result fingerprints differ: that is how "no out-of-bounds read" is checked
 * without instrumenting the views. Also checked: no exception, and termination (every iterator is
 * driven with a step cap far above what a packet of that size allows).
 *
 * Cases per parser: SLUICE_FUZZ_CASES (default 1,000,000; `npm run fuzz` sets 20,000,000). The
 * allocating tools run fewer: Repr decoders 1/20, describePacket 1/50.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Classified, classify } from './classify';
import { checkIpv4 } from './ipv4';
import { checkUdp } from './udp';
import { checkTcp } from './tcp';
import { nattKind } from './esp';
import { IkePayloadIter, ikeRepr } from './ike';
import { DhcpOptionIter, dhcpRepr, dhcpMessageType } from './dhcp';
import { Ipv6Packet, Ipv6Chain } from './ipv6';
import { decodeClasslessRoutes, relayAgentInfo, encodeClasslessRoutes } from './dhcp-options';
import { describePacket } from './describe';
import { describeIkePayload } from './ike-payloads';
import { capturedPackets, udpPayload } from '../../test/kit/packet';
import { ipv4Raw, ipv4Udp, dhcpBytes } from './build';
import { fromHex, ip4 } from './bytes';

const CASES = Number(process.env.SLUICE_FUZZ_CASES ?? 1_000_000);
const TOOL_CASES = Math.max(1, Math.floor(CASES / 20));
const DESCRIBE_CASES = Math.max(1, Math.floor(CASES / 50));
const PAD = 64;
const MAX = 1600;

let seed = (Number(process.env.SLUICE_FUZZ_SEED ?? 0x2f6b1d3) >>> 0) || 1;
function rnd(): number { // xorshift32
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed;
}

type Run = (b: Uint8Array, off: number, len: number) => number;

function h(a: number, b: number): number { return (Math.imul(a ^ b, 0x9e3779b1) + 0x7f4a7c15) | 0; }

/** Runs `cases` cases of `run` over mutations of `seeds` (and 1/8 random inputs). */
function fuzz(name: string, seeds: Uint8Array[], cases: number, run: Run): void {
  const A = new Uint8Array(PAD + MAX + PAD);
  const B = new Uint8Array(PAD + MAX + PAD).fill(0xff);
  const work = new Uint8Array(MAX);
  for (let n = 0; n < cases; n++) {
    let len: number;
    const r = rnd();
    if ((r & 7) === 0) { // random bytes, sometimes with a plausible first byte
      len = rnd() % 700;
      for (let i = 0; i < len; i++) work[i] = rnd() & 0xff;
      if (len && (r & 8)) work[0] = (r & 16) ? 0x45 : 0x60;
    } else {
      const s = seeds[(r >>> 3) % seeds.length]!;
      len = Math.min(s.length, MAX);
      work.set(s.subarray(0, len));
      const flips = 1 + ((r >>> 16) & 3);
      for (let f = 0; f < flips && len; f++) {
        const x = rnd();
        const pos = (x & 1) ? x % len : (x >>> 1) % Math.min(len, 48);
        work[pos] = (x & 2) ? (x >>> 8) & 0xff : work[pos]! ^ (1 << ((x >>> 8) & 7));
      }
      if ((r >>> 20) % 5 === 0) len = rnd() % (len + 1); // truncate
    }
    A.set(work.subarray(0, len), PAD);
    B.set(work.subarray(0, len), PAD);
    A.fill(0, PAD + len, PAD + len + PAD);
    B.fill(0xff, PAD + len, PAD + len + PAD);
    let fa: number, fb: number;
    try {
      fa = run(A, PAD, len);
      fb = run(B, PAD, len);
    } catch (e) {
      assert.fail(`${name}: case ${n} threw ${(e as Error).stack}\ninput ${Buffer.from(work.subarray(0, len)).toString('hex')}`);
    }
    if (fa !== fb) {
      assert.fail(`${name}: case ${n} read outside its bytes (results differ with different surroundings)\n` +
        `input ${Buffer.from(work.subarray(0, len)).toString('hex')}`);
    }
    // keep A's/B's tail guard clean for the next (possibly longer) case
    A.fill(0, PAD, PAD + len);
    B.fill(0xff, PAD, PAD + len);
  }
}

// ---- seeds -------------------------------------------------------------------------------------

const ipSeeds: Uint8Array[] = [];
for (const f of ['ike-esp-natt.pcap', 'dhcp-inform-ack.pcap', 'crafted.pcap']) for (const p of capturedPackets(f)) ipSeeds.push(p.ip);
const A4 = ip4('192.0.2.1'), B4 = ip4('198.51.100.2');
ipSeeds.push(ipv4Raw({ src: A4, dst: B4, protocol: 6, options: fromHex('01010101')! }, fromHex('0001000200000001000000006012ffff000000000204058c')!));
ipSeeds.push(ipv4Raw({ src: A4, dst: B4, protocol: 1 }, fromHex('0800f7ff0001000161626364')!));
ipSeeds.push(ipv4Raw({ src: A4, dst: B4, protocol: 17, moreFragments: true }, fromHex('119411940400000000000000')!));
const v6 = fromHex('6000000000200040' + '20010db8000000000000000000000001' + '20010db8000000000000000000000002' +
  '3c00000000000000' + '2c000000000000001100000100000042' + '1194119400080000')!;
v6[5] = v6.length - 40;
ipSeeds.push(v6);
const dhcpOverload = dhcpBytes({ op: 2, xid: 9, chaddr: fromHex('020000000001')!, options: [{ code: 52, data: Uint8Array.of(3) },
  { code: 53, data: Uint8Array.of(5) }, { code: 121, data: encodeClasslessRoutes([{ destination: 0, prefixLength: 0, router: 1 }]) }] });
dhcpOverload.set(fromHex('79050a0900010000ff')!, 108);
dhcpOverload.set(fromHex('7904000a0900ff')!, 44);
ipSeeds.push(ipv4Udp({ src: A4, dst: B4 }, { sport: 67, dport: 68, payload: dhcpOverload }));

const ikeSeeds: Uint8Array[] = [];
const dhcpSeeds: Uint8Array[] = [dhcpOverload];
for (const s of ipSeeds) {
  if (s[0]! >> 4 !== 4 || s[9] !== 17) continue;
  const sp = (s[20]! << 8) | s[21]!, dp = (s[22]! << 8) | s[23]!;
  const u = udpPayload(s);
  if (sp === 500 || dp === 500) ikeSeeds.push(u);
  else if ((sp === 4500 || dp === 4500) && u.length > 4 && u[0] === 0 && u[1] === 0 && u[2] === 0 && u[3] === 0) ikeSeeds.push(u.subarray(4));
  else if (sp === 67 || dp === 67 || sp === 68 || dp === 68) dhcpSeeds.push(u);
}
const routeSeeds = [fromHex('100a14' + '0a090001' + '18c0a84d' + '0a0900fe' + '00' + '0a090001')!, fromHex('200ac67a2f01020304')!];
const relaySeeds = [fromHex('010470707030' + '0206020000000001' + '05040a090000')!];

// ---- fingerprints ------------------------------------------------------------------------------

const c = new Classified();
const runClassify: Run = (b, o, l) => {
  classify(c, b, o, l);
  let x = h(c.reason, c.appReason);
  x = h(x, c.kind); x = h(x, c.proto); x = h(x, c.src); x = h(x, c.dst); x = h(x, c.sport); x = h(x, c.dport);
  x = h(x, c.l4Offset); x = h(x, c.l4Length); x = h(x, c.payloadLength); x = h(x, c.espSpi); x = h(x, c.espSeq);
  x = h(x, c.ikeIspiLo); x = h(x, c.ikeExchange); x = h(x, c.ikeLength); x = h(x, c.dhcpMessageType);
  x = h(x, c.tcpFlags); x = h(x, c.icmpType); x = h(x, +c.isFragment); x = h(x, +c.isLaterFragment);
  return h(x, c.ttl);
};

const ikeIt = new IkePayloadIter();
const runIke: Run = (b, o, l) => {
  ikeIt.reset(b, o, l);
  let x = ikeIt.error, steps = 0;
  while (ikeIt.next()) {
    x = h(h(h(x, ikeIt.type), ikeIt.offset), ikeIt.length);
    if (++steps > l) assert.fail('IKE walk did not terminate');
  }
  return h(h(x, ikeIt.error), +ikeIt.encrypted);
};

const dIt = new DhcpOptionIter();
const runDhcp: Run = (b, o, l) => {
  dIt.reset(b, o, l);
  let x = dIt.error, steps = 0;
  while (dIt.next()) {
    x = h(h(h(x, dIt.code), dIt.dataOffset), dIt.dataLength);
    if (++steps > l + 200) assert.fail('DHCP walk did not terminate');
  }
  return h(h(h(x, dIt.error), dIt.overload), dhcpMessageType(dIt, b, o, l));
};

const ch = new Ipv6Chain();
const v6p = new Ipv6Packet();
const runV6: Run = (b, o, l) => {
  if (l < 40) return -1;
  // walk() trusts Payload Length the way classify checks it: clamp like the checked constructor.
  if (40 + ((b[o + 4]! << 8) | b[o + 5]!) > l) return -2;
  v6p.wrap(b, o, l).walk(ch);
  return h(h(h(h(ch.error, ch.proto), ch.l4Offset), ch.l4Length), ch.fragmentOffset);
};

function fpJson(v: unknown): number {
  const s = JSON.stringify(v, (_k, val) => (val instanceof Uint8Array ? Buffer.from(val).toString('hex') : val));
  let x = 0;
  for (let i = 0; i < s.length; i++) x = h(x, s.charCodeAt(i));
  return x;
}

test(`classify: ${CASES} cases`, () => fuzz('classify', ipSeeds, CASES, runClassify));
test(`ipv4/udp/tcp checked constructors and nattKind: ${CASES} cases`, () =>
  fuzz('l3l4', ipSeeds, CASES, (b, o, l) => {
    const hl = l > 0 ? (b[o]! & 15) * 4 : 0;
    let x = checkIpv4(b, o, l);
    const rest = Math.max(0, l - hl);
    x = h(x, checkUdp(b, o + hl, rest));
    x = h(x, checkTcp(b, o + hl, rest));
    return h(x, nattKind(b, o + hl + 8, Math.max(0, rest - 8)));
  }));
test(`ipv6 extension-header walk: ${CASES} cases`, () => fuzz('ipv6', ipSeeds, CASES, runV6));
test(`IKE header + payload walk: ${CASES} cases`, () => fuzz('ike', ikeSeeds, CASES, runIke));
test(`DHCP option iterator (overload, long options): ${CASES} cases`, () => fuzz('dhcp', dhcpSeeds, CASES, runDhcp));
test(`classless routes 121/249 decoder: ${CASES} cases`, () =>
  fuzz('routes', routeSeeds, CASES, (b, o, l) => {
    const r = decodeClasslessRoutes(b, o, l);
    if (!r.ok) return h(-1, r.error);
    let x = r.value.length;
    for (const rt of r.value) x = h(h(h(x, rt.destination), rt.prefixLength), rt.router);
    return x;
  }));
test(`option 82 decoder: ${CASES} cases`, () =>
  fuzz('option82', relaySeeds, CASES, (b, o, l) => {
    const r = relayAgentInfo.decode(b, o, l);
    let x = relayAgentInfo.find(b, o, l, 5);
    if (!r.ok) return h(x, -r.error);
    for (const s of r.value) x = h(h(h(x, s.code), s.data.length), s.data[0] ?? -1);
    return x;
  }));
test(`Repr decoders (IKE, DHCP) and IKE payload bodies: ${TOOL_CASES} cases each`, () => {
  fuzz('ikeRepr', ikeSeeds, TOOL_CASES, (b, o, l) => {
    let x = fpJson(ikeRepr.decode(b, o, l));
    ikeIt.reset(b, o, l);
    while (ikeIt.next()) if (!ikeIt.encrypted) x = h(x, fpJson(describeIkePayload(ikeIt.version, ikeIt.type, b, ikeIt.bodyOffset, ikeIt.bodyLength)));
    return x;
  });
  fuzz('dhcpRepr', dhcpSeeds, TOOL_CASES, (b, o, l) => fpJson(dhcpRepr.decode(b, o, l)));
});
test(`describePacket (sluice decode): ${DESCRIBE_CASES} cases`, () => fuzz('describe', ipSeeds, DESCRIBE_CASES, (b, o, l) => fpJson(describePacket(b, o, l))));

test('the harness catches a parser that reads one byte past its end, and one that throws', () => {
  assert.throws(() => fuzz('oob', ipSeeds, 1000, (b, o, l) => b[o + l]!), /read outside/);
  assert.throws(() => fuzz('throw', ipSeeds, 1000, (b, o) => { if (b[o] === 0x45) throw new Error('boom'); return 0; }), /threw/);
});
