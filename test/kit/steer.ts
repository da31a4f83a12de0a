/**
 * Test helpers for steer/policy: a PacketContext from classified fields or from real bytes, a fake
 * StageServices, and a fixed interface table. Tests and benches only.
 */
import { Decision, type PacketContext, type StageServices } from '../../src/engine/stage';
import { Interfaces, type InterfaceInfo } from '../../src/io/interfaces';
import { Classified, classify } from '../../src/packet/classify';
import { ip4 as parseIpv4 } from '../../src/packet/bytes';

export interface PktSpec {
  src?: string; dst?: string; proto?: number; sport?: number; dport?: number;
  icmpType?: number; kind?: number; dhcpMessageType?: number; ikeExchange?: number; espSpi?: number;
  totalLength?: number; ipVersion?: number; isLaterFragment?: boolean;
  hook?: number; indev?: number; outdev?: number; mark?: number; queue?: number;
}

/** A context whose `info` is filled directly (the Classified contract fields), no bytes. */
export function ctxOf(p: PktSpec): PacketContext {
  const info = new Classified();
  info.ipVersion = p.ipVersion ?? 4;
  info.src = p.src ? parseIpv4(p.src) : 0;
  info.dst = p.dst ? parseIpv4(p.dst) : 0;
  info.proto = p.proto ?? 0;
  info.sport = p.sport ?? 0;
  info.dport = p.dport ?? 0;
  info.icmpType = p.icmpType ?? -1;
  info.kind = p.kind ?? 0;
  info.dhcpMessageType = p.dhcpMessageType ?? 0;
  info.ikeExchange = p.ikeExchange ?? 0;
  info.espSpi = p.espSpi ?? 0;
  info.totalLength = p.totalLength ?? 60;
  info.isLaterFragment = p.isLaterFragment ?? false;
  return {
    bytes: new Uint8Array(0), offset: 0, length: info.totalLength, capacity: 0,
    mark: p.mark ?? 0, indev: p.indev ?? 0, outdev: p.outdev ?? 0, hook: p.hook ?? 0, queue: p.queue ?? 0, info,
  };
}

/** A context over real packet bytes, classified by the packet layer. */
export function ctxOfBytes(bytes: Uint8Array, m: Omit<PktSpec, 'src' | 'dst'> = {}): PacketContext {
  const info = new Classified();
  classify(info, bytes, 0, bytes.length);
  return {
    bytes, offset: 0, length: bytes.length, capacity: bytes.length,
    mark: m.mark ?? 0, indev: m.indev ?? 0, outdev: m.outdev ?? 0, hook: m.hook ?? 0, queue: m.queue ?? 0, info,
  };
}

export function fakeInterfaces(names: Record<string, number>, addrs: Record<string, string> = {}): Interfaces {
  const list: InterfaceInfo[] = Object.entries(names).map(([name, index]) => {
    const a = addrs[name] ? parseIpv4(addrs[name]!) : 0;
    return { name, index, ipv4: a, prefixLength: a ? 24 : 0, addresses: a ? [{ address: a, prefixLength: 24 }] : [], mac: new Uint8Array(6) };
  });
  return Interfaces.fromList(list);
}

export interface FakeServices extends StageServices {
  reasons: Map<string, number>;
  counts: Map<number, number>;
}

export function fakeServices(ifaces: Interfaces): FakeServices {
  const reasons = new Map<string, number>();
  const counts = new Map<number, number>();
  return {
    reasons, counts, interfaces: ifaces,
    reason: (name) => { if (!reasons.has(name)) reasons.set(name, reasons.size + 1); return reasons.get(name)!; },
    count: (id, n = 1) => { counts.set(id, (counts.get(id) ?? 0) + n); },
    hold: () => -1, release: () => undefined, releaseWith: () => undefined,
    inject: () => false, injectL2: () => false, now: () => 0,
  };
}

export { Decision };
