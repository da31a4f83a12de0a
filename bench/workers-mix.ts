/**
 * The packet mix and NAT state of bench/workers.bench.ts: a VPN gateway's realistic mix where the NAT
 * carries most packets on established SAs. Per 100 packets: 32 ESP host → server (POSTROUTING),
 * 32 ESP server → public (PREROUTING), 6 IKE INFORMATIONAL on established IKE SAs (both ways),
 * 25 TCP from the LAN (steer rules look at them), 5 DHCP (captured). 1000 hosts, 20 servers,
 * one IKE SA and one CHILD_SA (both directions) per host; ESP payloads 64–1400 bytes.
 * The same seed gives the same packets in every thread.
 */
import { ip4 } from '../src/packet/bytes';
import { ipv4Raw } from '../src/packet/build';
import { tcpRepr, ACK_FLAG } from '../src/packet/tcp';
import { HOOK_POSTROUTING, HOOK_PREROUTING } from '../src/engine/stage';
import { SaKind } from '../src/nat/table';
import type { NatState } from '../src/nat/state';
import { capturedPackets } from '../test/kit/packet';
import { esp, ike, INFORMATIONAL } from '../test/kit/nat';

export const PUB = '203.0.113.1';
export const HOSTS = 1000;
const SERVERS = 20;
export const hostAddr = (i: number): number => ip4(`10.1.${i >> 7}.${(i & 127) + 1}`);
export const serverAddr = (i: number): number => ip4(`198.51.100.${(i % SERVERS) + 1}`);
const spiOut = (i: number): number => (0xd0000000 + i) >>> 0;
const spiIn = (i: number): number => (0xc0000000 + i) >>> 0;
const ispi = (i: number): bigint => 0x1111000000000000n + BigInt(i);
const rspi = (i: number): bigint => 0x2222000000000000n + BigInt(i);

/** Established SAs of every host, as the NAT would hold them after negotiation and learning. */
export function populateNat(s: NatState): void {
  const now = Date.now(); // the engine's clock (services.now()): older records would idle out during the run
  for (let i = 0; i < HOSTS; i++) {
    const h = s.host(hostAddr(i), now);
    const server = serverAddr(i);
    const pub = s.hosts.pub[h]!;
    const ikeId = s.addSa(SaKind.IKE, pub, server, h, Number(ispi(i) >> 32n), Number(ispi(i) & 0xffffffffn), 0, now, false);
    s.sas.rh[ikeId] = Number(rspi(i) >> 32n); s.sas.rl[ikeId] = Number(rspi(i) & 0xffffffffn);
    const o = s.addSa(SaKind.ESP_OUT, pub, server, h, spiOut(i), 0, 0, now, false);
    const n = s.addSa(SaKind.ESP_IN, pub, server, h, spiIn(i), 0, 0, now, false);
    if (ikeId < 0 || o < 0 || n < 0) throw new Error('bench NAT population refused (limits)');
    s.sas.pair[o] = n; s.sas.pair[n] = o;
  }
}

/**
 * Which of n queues the kernel's --queue-balance would pick: a hash of the address pair, so a host's
 * outbound ESP (host, server) and the server's inbound ESP (server, public) usually differ.
 */
export function flowQueue(b: Uint8Array, n: number): number {
  const v = new DataView(b.buffer, b.byteOffset);
  const h = Math.imul((v.getUint32(12) ^ v.getUint32(16)) >>> 0, 0x9e3779b1) >>> 0;
  return (h >>> 16) % n;
}

export interface MixPacket { bytes: Uint8Array; hook: number; indev: number }

export function benchMix(seed: number, n = 6400): MixPacket[] {
  let x = seed >>> 0;
  const rnd = (k: number): number => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return (x >>> 8) % k; };
  const dhcp = capturedPackets('dhcp-inform-ack.pcap')[0]!.ip;
  const pub = ip4(PUB);
  const out: MixPacket[] = [];
  for (let i = 0; i < n; i++) {
    const k = i % 100;
    const host = rnd(HOSTS);
    const len = 64 + rnd(1337);
    if (k < 32) out.push({ bytes: esp(hostAddr(host), serverAddr(host), spiOut(host), 1 + i, len), hook: HOOK_POSTROUTING, indev: 2 });
    else if (k < 64) out.push({ bytes: esp(serverAddr(host), pub, spiIn(host), 1 + i, len), hook: HOOK_PREROUTING, indev: 3 });
    else if (k < 67) out.push({ bytes: ike(hostAddr(host), serverAddr(host), { ispi: ispi(host), rspi: rspi(host), exchange: INFORMATIONAL, msgId: 5 }), hook: HOOK_POSTROUTING, indev: 2 });
    else if (k < 70) out.push({ bytes: ike(serverAddr(host), pub, { ispi: ispi(host), rspi: rspi(host), exchange: INFORMATIONAL, flags: 0x20, msgId: 5 }), hook: HOOK_PREROUTING, indev: 3 });
    else if (k < 95) {
      const t = { srcPort: 30000 + rnd(30000), dstPort: [443, 443, 80, 22, 8080, 5222][rnd(6)]!, flags: ACK_FLAG, payload: new Uint8Array(rnd(1200)) };
      const seg = new Uint8Array(tcpRepr.encodingLength(t));
      const src = hostAddr(rnd(HOSTS)), dst = ip4(`192.0.2.${rnd(250)}`);
      tcpRepr.encode(t, seg, 0, { src, dst });
      out.push({ bytes: ipv4Raw({ src, dst, protocol: 6 }, seg), hook: HOOK_PREROUTING, indev: 2 });
    } else out.push({ bytes: dhcp, hook: HOOK_PREROUTING, indev: 2 });
  }
  // Shuffle within each 100 so the kinds interleave as on a wire.
  for (let b = 0; b < n; b += 100) {
    for (let i = Math.min(n, b + 100) - 1; i > b; i--) { const j = b + rnd(i - b + 1); [out[i], out[j]] = [out[j]!, out[i]!]; }
  }
  return out;
}

/** 100 steer rules of the kinds a gateway has (ports by source prefix, prefixes, marks, ranges). */
export function steerRules(n: number, seed = 42): unknown[] {
  let x = seed >>> 0;
  const rnd = (k: number): number => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return (x >>> 8) % k; };
  const nets = Array.from({ length: 64 }, (_, i) => `10.${(i * 37) % 250}.${(i * 11) % 250}`);
  const ports = [22, 25, 53, 80, 110, 123, 143, 443, 465, 587, 993, 995, 1194, 3306, 3389, 5060, 8080, 8443];
  const rules: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const k = rnd(10);
    const net = `${nets[rnd(nets.length)]}.0/24`;
    let match: Record<string, unknown>;
    if (k < 4) match = { proto: rnd(2) ? 'tcp' : 'udp', dport: ports[rnd(ports.length)], src: net };
    else if (k < 6) match = { dst: net, not: { dport: 22 } };
    else if (k < 7) match = { in: rnd(2) ? 'ppp*' : 'wlan0', src: net };
    else if (k < 8) match = { proto: 'udp', dport: `${10000 + rnd(20000)}:${30000 + rnd(30000)}`, dst: net };
    else if (k < 9) match = { mark: `0x${(rnd(255) + 1).toString(16)}00/0xff00`, proto: 'tcp' };
    else match = { ike_exchange: 'ike_sa_init', src: net };
    const action = [{ mark: `0x${(i & 0xff).toString(16)}/0xff` }, 'accept', 'continue'][rnd(3)];
    rules.push({ name: `r${i}`, match, action });
  }
  return rules;
}
