/**
 * One packet → plain JSON with every layer sluice understands, for `sluice decode` and for tests
 * that compare captures. Control path only (allocates). Invalid parts are reported, never thrown:
 * `invalid: { layer, reason }` names the first layer that failed; later layers are absent.
 */
import { ipv4ToString, ipv6ToString, toHex, u16 } from './bytes';
import { Classified, classify, KIND_NAMES } from './classify';
import { ParseError, parseErrorName } from './errors';
import { Ipv4Packet } from './ipv4';
import { Ipv6Packet, Ipv6Chain } from './ipv6';
import { UdpPacket } from './udp';
import { TcpPacket, tcpFlagNames } from './tcp';
import { IkeHeader, IkePayloadIter, exchangeName, payloadName, FLAG_V2_INITIATOR, FLAG_V2_RESPONSE,
  FLAG_V2_VERSION, FLAG_V1_ENCRYPTED, FLAG_V1_COMMIT, FLAG_V1_AUTH_ONLY, checkIke } from './ike';
import { describeIkePayload } from './ike-payloads';
import { DhcpPacket, dhcpRepr, MESSAGE_TYPE_NAMES, checkDhcp } from './dhcp';
import { describeOption } from './dhcp-options';
import { PORT_IKE, PORT_NATT } from './esp';

type Json = Record<string, unknown>;

function hex32(v: number): string { return `0x${v.toString(16).padStart(8, '0')}`; }

export function describePacket(bytes: Uint8Array, offset = 0, length = bytes.length - offset): Json {
  const out: Json = {};
  const c = new Classified();
  classify(c, bytes, offset, length);
  const invalid = (layer: string, reason: ParseError | string): Json => {
    out.invalid = { layer, reason: typeof reason === 'string' ? reason : parseErrorName(reason) };
    return out;
  };
  if (c.ipVersion === 4 && length >= 20) {
    const v = new Ipv4Packet(bytes, offset, length);
    out.ipv4 = { src: ipv4ToString(v.src), dst: ipv4ToString(v.dst), headerLength: v.headerLength,
      totalLength: v.totalLength, id: v.ident, ttl: v.ttl, protocol: v.protocol, dscp: v.dscp, ecn: v.ecn,
      df: v.dontFragment, mf: v.moreFragments, fragmentOffset: v.fragmentOffset,
      checksumOk: v.headerLength >= 20 && v.headerLength <= length ? v.verifyChecksum() : undefined };
  } else if (c.ipVersion === 6 && length >= 40) {
    const v = new Ipv6Packet(bytes, offset, length);
    const ch = c.reason === ParseError.NONE ? v.walk(new Ipv6Chain()) : null;
    out.ipv6 = { src: ipv6ToString(bytes, offset + 8), dst: ipv6ToString(bytes, offset + 24), payloadLength: v.payloadLength,
      nextHeader: v.nextHeader, hopLimit: v.hopLimit, trafficClass: v.trafficClass, flowLabel: v.flowLabel,
      ...(ch ? { upperLayer: ch.proto, extensionHeaders: ch.headers, ...(ch.isFragment
        ? { fragment: { id: ch.fragmentId, offset: ch.fragmentOffset, more: ch.moreFragments } } : {}) } : {}) };
  }
  if (c.reason !== ParseError.NONE) {
    const layer = c.l4Offset === 0 || (c.ipVersion === 4 && c.l3HeaderLength === 0) ? `ipv${c.ipVersion || '?'}` : protoName(c.proto);
    return invalid(layer, c.reason);
  }
  if (c.isLaterFragment) { out.kind = 'fragment'; return out; }
  const l4 = c.l4Offset, l4len = c.l4Length;
  switch (c.proto) {
    case 17: {
      const u = new UdpPacket(bytes, l4, l4len);
      const udp: Json = { sport: u.srcPort, dport: u.dstPort, length: u.udpLength, checksum: u.checksum };
      if (!c.isFragment && c.ipVersion === 4) {
        // Captured locally the checksum may be left for the NIC (CHECKSUM_PARTIAL): report, never fail.
        udp.checksumOk = u.checksum === 0 ? 'none' : u.verifyChecksum4(c.src, c.dst);
      }
      out.udp = udp;
      break;
    }
    case 6: {
      const t = new TcpPacket(bytes, l4, l4len);
      out.tcp = { sport: t.srcPort, dport: t.dstPort, seq: t.seq, ack: t.ack, flags: tcpFlagNames(t.flags),
        headerLength: t.headerLength, window: t.window, payloadLength: t.payloadLength,
        ...(c.ipVersion === 4 && !c.isFragment ? { checksumOk: t.verifyChecksum4(c.src, c.dst) } : {}) };
      break;
    }
    case 1: case 58:
      out[c.proto === 1 ? 'icmp' : 'icmpv6'] = { type: c.icmpType, code: c.icmpCode, ...(c.proto === 1 && l4len >= 8
        ? { id: u16(bytes, l4 + 4), seq: u16(bytes, l4 + 6) } : {}) };
      break;
    case 50:
      out.esp = { spi: hex32(c.espSpi), seq: c.espSeq, length: c.payloadLength + 8 };
      break;
    default:
      out.l4 = { protocol: c.proto, length: l4len };
  }
  out.kind = KIND_NAMES[c.kind] ?? c.kind;
  const natt = c.sport === PORT_NATT || c.dport === PORT_NATT;
  if (c.kind === 2) out.esp = { spi: hex32(c.espSpi), seq: c.espSeq, length: c.payloadLength, encap: 'udp' };
  if (c.kind === 4) out.natKeepalive = true;
  if (c.kind === 3) out.ike = describeIke(bytes, c.ikeOffset, Math.min(c.payloadLength - (natt ? 4 : 0), c.ikeLength), natt);
  if (c.kind === 5) out.dhcp = describeDhcp(bytes, c.dhcpOffset, c.dhcpLength);
  if (c.appReason !== ParseError.NONE) {
    const layer = natt ? 'udp-4500' : (c.sport === PORT_IKE || c.dport === PORT_IKE) ? 'ike' : 'dhcp';
    return invalid(layer, c.appReason);
  }
  if (out.ike && (out.ike as Json).invalid) out.invalid = (out.ike as Json).invalid;
  if (out.dhcp && (out.dhcp as Json).invalid) out.invalid = (out.dhcp as Json).invalid;
  return out;
}

function protoName(p: number): string {
  return ({ 1: 'icmp', 6: 'tcp', 17: 'udp', 50: 'esp', 58: 'icmpv6' } as Record<number, string>)[p] ?? `proto-${p}`;
}

export function describeIke(b: Uint8Array, off: number, len: number, nonEspMarker = false): Json {
  const h = new IkeHeader(b, off, len);
  const v = h.majorVersion, f = h.flags;
  const flags: string[] = [];
  if (v === 2) {
    if (f & FLAG_V2_INITIATOR) flags.push('initiator');
    if (f & FLAG_V2_RESPONSE) flags.push('response');
    if (f & FLAG_V2_VERSION) flags.push('version');
  } else {
    if (f & FLAG_V1_ENCRYPTED) flags.push('encrypted');
    if (f & FLAG_V1_COMMIT) flags.push('commit');
    if (f & FLAG_V1_AUTH_ONLY) flags.push('auth-only');
  }
  const r: Json = { version: `${v}.${h.minorVersion}`, ...(nonEspMarker ? { nonEspMarker: true } : {}),
    ispi: toHex(b, off, 8), rspi: toHex(b, off + 8, 8), exchange: exchangeName(h.exchange), exchangeType: h.exchange,
    flags, messageId: h.messageId, length: h.messageLength };
  if (checkIke(b, off, len) !== ParseError.NONE) { r.invalid = { layer: 'ike', reason: parseErrorName(checkIke(b, off, len)) }; return r; }
  const it = new IkePayloadIter().reset(b, off, len);
  const payloads: Json[] = [];
  while (it.next()) {
    const p: Json = { type: payloadName(v, it.type), ...(it.critical ? { critical: true } : {}) };
    if (it.encrypted) Object.assign(p, { firstInner: payloadName(v, it.nextType), length: it.bodyLength });
    else Object.assign(p, describeIkePayload(v, it.type, b, it.bodyOffset, it.bodyLength));
    payloads.push(p);
  }
  r.encrypted = it.encrypted;
  if (v === 1 && it.encrypted) r.firstPayload = payloadName(1, h.nextPayload);
  r.payloads = payloads;
  if (it.error !== ParseError.NONE) r.invalid = { layer: `ike.payload[${it.count}]`, reason: parseErrorName(it.error) };
  return r;
}

export function describeDhcp(b: Uint8Array, off: number, len: number): Json {
  const e = checkDhcp(b, off, len);
  if (e !== ParseError.NONE) return { invalid: { layer: 'dhcp', reason: parseErrorName(e) } };
  const v = new DhcpPacket(b, off, len);
  const r: Json = { op: v.op === 1 ? 'request' : 'reply', htype: v.htype, hops: v.hops, xid: hex32(v.xid), secs: v.secs,
    broadcast: v.broadcast, ciaddr: ipv4ToString(v.ciaddr), yiaddr: ipv4ToString(v.yiaddr),
    siaddr: ipv4ToString(v.siaddr), giaddr: ipv4ToString(v.giaddr),
    chaddr: Array.from(b.subarray(off + 28, off + 28 + v.hlen), (x) => x.toString(16).padStart(2, '0')).join(':') };
  const d = dhcpRepr.decode(b, off, len);
  if (!d.ok) { r.invalid = { layer: d.where, reason: parseErrorName(d.error) }; return r; }
  const mt = d.value.options.find((o) => o.code === 53);
  if (mt && mt.data.length === 1) r.messageType = MESSAGE_TYPE_NAMES[mt.data[0]!] || mt.data[0];
  if (d.value.overload) r.overload = d.value.overload;
  r.options = d.value.options.map((o) => describeOption(o.code, o.data));
  return r;
}
