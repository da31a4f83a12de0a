/**
 * Test helpers for the DHCP stage: a fake StageServices that records injected packets, a driver
 * that classifies and runs one IP packet through the stage, and request builders on the packet
 * layer's dhcpRepr. Used by the unit tests and the benchmark; not on the production path.
 */
import { Classified, classify } from '../../src/packet/classify';
import { Decision, HOOK_INPUT, Verdict, type PacketContext, type StageServices, type Stage } from '../../src/engine/stage';
import { Interfaces, type InterfaceInfo } from '../../src/io/interfaces';
import { ipv4Udp, dhcpBytes } from '../../src/packet/build';
import { dhcpRepr, type DhcpRepr, type DhcpOptionRepr } from '../../src/packet/dhcp';
import { ip4 } from '../../src/packet/bytes';

export interface Sent { kind: 'ip' | 'l2'; ifindex: number; mac?: Uint8Array; packet: Uint8Array }

export class FakeServices implements StageServices {
  time = 1000;
  readonly reasons: string[] = ['none'];
  readonly counts = new Map<string, number>();
  readonly sent: Sent[] = [];
  injectOk = true;
  /** Keep copies of injected packets (the bench turns this off). */
  record = true;
  readonly interfaces: Interfaces;
  constructor(ifs: InterfaceInfo[]) { this.interfaces = Interfaces.fromList(ifs); }
  reason(name: string): number { this.reasons.push(name); return this.reasons.length - 1; }
  count(id: number, n = 1): void { const k = this.reasons[id]!; this.counts.set(k, (this.counts.get(k) ?? 0) + n); }
  hold(): number { return -1; }
  release(): void {}
  releaseWith(): void {}
  inject(ifindex: number, packet: Uint8Array): boolean {
    if (this.record) this.sent.push({ kind: 'ip', ifindex, packet: packet.slice() });
    return this.injectOk;
  }
  injectL2(ifindex: number, mac: Uint8Array, packet: Uint8Array): boolean {
    if (this.record) this.sent.push({ kind: 'l2', ifindex, mac: mac.slice(), packet: packet.slice() });
    return this.injectOk;
  }
  now(): number { return this.time; }
  counter(name: string): number { return this.counts.get(name) ?? 0; }
}

export function iface(name: string, index: number, addr: string | null, mac = true): InterfaceInfo {
  const a = addr ? ip4(addr) : 0;
  return {
    name, index, ipv4: a, prefixLength: a ? 32 : 0, addresses: a ? [{ address: a, prefixLength: 32 }] : [],
    mac: mac ? Uint8Array.of(2, 0, 0, 0, 0, index) : new Uint8Array(6),
  };
}

export interface RunResult { verdict: Verdict; reason: string }

const info = new Classified();
const decision = new Decision();

/** Runs one IP packet (a copy) through the stage as if queued at INPUT from ifindex indev. */
export function run(stage: Stage, fs: FakeServices, pkt: Uint8Array, indev: number): RunResult {
  const bytes = pkt.slice();
  classify(info, bytes, 0, bytes.length);
  const ctx: PacketContext = { bytes, offset: 0, length: bytes.length, capacity: bytes.length, mark: 0, indev, outdev: 0, hook: HOOK_INPUT, queue: 0, info };
  decision.reset();
  stage.process(ctx, decision);
  return { verdict: decision.verdict, reason: decision.verdict === Verdict.DROP ? fs.reasons[decision.reason]! : '' };
}

export const MAC = Uint8Array.of(2, 0, 0, 0, 0, 0x0c);
const te = new TextEncoder();
export const opt = (code: number, ...data: number[]): DhcpOptionRepr => ({ code, data: Uint8Array.from(data) });
export const optText = (code: number, s: string): DhcpOptionRepr => ({ code, data: te.encode(s) });

/** A Windows-like DHCPINFORM: 53, 61 (type 1 + MAC), 12, 60 "MSFT 5.0", 55 (given list). */
export function windowsInform(prl: number[] | null, o: Partial<DhcpRepr> = {}): DhcpRepr {
  const options: DhcpOptionRepr[] = [opt(53, 8), opt(61, 1, ...MAC), optText(12, 'LAB-PC'), optText(60, 'MSFT 5.0')];
  if (prl) options.push(opt(55, ...prl));
  return { op: 1, xid: 0x5a5a1234, ciaddr: ip4('10.9.0.50'), chaddr: MAC, options, ...o };
}

export function udpDhcp(src: string, dst: string, sport: number, dport: number, r: DhcpRepr | Uint8Array): Uint8Array {
  const payload = r instanceof Uint8Array ? r : dhcpBytes(r);
  return ipv4Udp({ src: ip4(src), dst: ip4(dst) }, { sport, dport, payload });
}

/** Decodes the DHCP message of an injected IP packet. */
export function decodeSent(p: Uint8Array): { src: number; dst: number; sport: number; dport: number; dhcp: DhcpRepr } {
  const hl = (p[0]! & 15) * 4;
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const r = dhcpRepr.decode(p, hl + 8, p.length - hl - 8);
  if (!r.ok) throw new Error(`bad DHCP in injected packet: ${r.where}`);
  return { src: dv.getUint32(12), dst: dv.getUint32(16), sport: dv.getUint16(hl), dport: dv.getUint16(hl + 2), dhcp: r.value };
}

export function optionOf(r: DhcpRepr, code: number): Uint8Array | undefined {
  return r.options.find((o) => o.code === code)?.data;
}

/** Option codes of a DHCP message in wire order (instances, not concatenated). */
export function wireCodes(p: Uint8Array, dhcpOff: number): number[] {
  const out: number[] = [];
  let i = dhcpOff + 240;
  while (i < p.length && p[i] !== 255) {
    if (p[i] === 0) { i++; continue; }
    out.push(p[i]!);
    i += 2 + p[i + 1]!;
  }
  return out;
}
