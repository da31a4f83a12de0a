/**
 * What the NAT tables say about one packet, for `sluice trace` (Stage.explain): its mapping (host ↔
 * public), the SA record (SPI, how it was learned, paired, flags) and, for an inbound SPI nobody
 * knows yet, the learning turn running for its public address and server. Reads only: the stage
 * decides right after, and may create or learn the record this reports missing.
 */
import { Kind } from '../packet/classify';
import { ipv4ToString } from '../packet/bytes';
import { HOOK_POSTROUTING, HOOK_PREROUTING, type PacketContext } from '../engine/stage';
import { SaKind } from './table';
import { rowOf } from './commands';
import type { NatState } from './state';

const TURNS = ['none', 'window', 'probe', 'clearing'];

interface NatView { readonly state: NatState; serverAllowed(addr: number): boolean }

export function explainNat(stage: NatView, pkt: PacketContext): Record<string, unknown> {
  const info = pkt.info;
  const s = stage.state;
  const kind = info.kind;
  if (info.reason !== 0 || info.ipVersion !== 4) return { skip: 'not IPv4' };
  if (kind !== Kind.ESP && kind !== Kind.ESP_IN_UDP && kind !== Kind.IKE && kind !== Kind.NAT_KEEPALIVE) return { skip: 'not ESP/IKE' };
  if (kind === Kind.NAT_KEEPALIVE) return { skip: 'NAT keepalive' };
  const now = s.services?.now() ?? 0;
  const ike = kind === Kind.IKE;
  if (pkt.hook === HOOK_PREROUTING) {
    const pub = s.pubIndexOf(info.dst);
    if (pub < 0) return { skip: 'not to a public address' };
    const server = info.src;
    if (!stage.serverAllowed(server)) return { skip: 'server not in nat.servers' };
    const id = ike ? s.sas.find(SaKind.IKE, pub, server, info.ikeIspiHi, info.ikeIspiLo) : s.sas.find(SaKind.ESP_IN, pub, server, info.espSpi, 0);
    if (id >= 0) return { mapping: `${ipv4ToString(info.dst)}→${ipv4ToString(s.sas.host[id])}`, ...sa(stage, id, now) };
    return { mapping: 'none', ...learningOf(s, pub, server, now) };
  }
  if (pkt.hook === HOOK_POSTROUTING) {
    if (s.pubIndexOf(info.src) >= 0) return { skip: 'from a public address' };
    if (!stage.serverAllowed(info.dst)) return { skip: 'server not in nat.servers' };
    const h = s.hosts.find(info.src);
    if (h < 0) return { mapping: `${ipv4ToString(info.src)}→(new host)` };
    const pub = s.hosts.pub[h];
    const id = ike ? s.sas.find(SaKind.IKE, pub, info.dst, info.ikeIspiHi, info.ikeIspiLo) : s.sas.find(SaKind.ESP_OUT, pub, info.dst, info.espSpi, 0);
    return { mapping: `${ipv4ToString(info.src)}→${ipv4ToString(s.publics[pub])}`, ...(id >= 0 ? sa(stage, id, now) : { sa: 'new' }) };
  }
  return { skip: 'hook is neither prerouting nor postrouting' };
}

function sa(stage: NatView, id: number, now: number): Record<string, unknown> {
  const r = rowOf(stage, id, now, Date.now());
  const out: Record<string, unknown> = { spi: r.spi };
  if (r.learned !== undefined) out.learned = r.learned;
  if (r.paired !== undefined) out.paired = r.paired;
  if (r.flags.length) out.flags = r.flags.join(',');
  return out;
}

function learningOf(s: NatState, pub: number, server: number, now: number): Record<string, unknown> {
  const L = s.learning;
  for (let p = 0; p < L.peerServer.length; p++) {
    if (L.peerServer[p] !== server || L.peerPub[p] !== pub) continue;
    const t = L.turn[p]!;
    const running = t !== 0 && now < L.turnDeadline[p]!;
    return { learning: running ? `${TURNS[t]} for ${ipv4ToString(L.linkHost[L.turnLink[p]!]!)}` : 'no turn', held: L.heldOf(p) };
  }
  return { learning: 'no turn (server not seen)' };
}
