/**
 * The DHCP stage: DHCPINFORM responder and relay agent over queued UDP port 67 traffic.
 *
 * Flow per packet (IPv4/UDP to port 67 only; everything else passes on untouched):
 *   1. arrival interface → cached entry (which roles its name matches, its address, its 82 value);
 *   2. unreadable DHCP on a configured interface → counted drop;
 *   3. BOOTREQUEST: DHCPINFORM on an inform interface matching a scope → rate limit → ACK built by
 *      InformResponder, sent out of the arrival interface (services.inject: its address as source,
 *      even when another interface has the same one), verdict ANSWERED (the request is consumed);
 *      else on a relay client interface → RelayCore rewrites it, sent to every server, ANSWERED;
 *      else ACCEPT untouched (a local DHCP server keeps working);
 *   4. BOOTREPLY (relay): trusted only from a configured server's address on the interface that
 *      reaches it, with a giaddr that is the client interface's relay address and, when agent_info
 *      is on, the option 82 we added to a request we relayed from that interface (exact circuit-id
 *      and remote-id); anything else is a counted drop. 82 stripped, sent to the client on the
 *      interface its circuit-id (else its xid, else giaddr) names: broadcast, ciaddr, or yiaddr to
 *      chaddr (L2).
 */
import type { Decision, PacketContext, Stage, StageServices } from '../engine/stage';
import { Verdict } from '../engine/stage';
import { Kind } from '../packet/classify';
import { u32 } from '../packet/bytes';
import { CIADDR, CHADDR, GIADDR, HLEN, HTYPE, XID, PORT_CLIENT, PORT_SERVER, MessageType } from '../packet/dhcp';
import { relayAgentInfo, RAI_CIRCUIT_ID, RAI_REMOTE_ID, RAI_LINK_SELECTION, RAI_SERVER_ID_OVERRIDE, type SubOption } from '../packet/dhcp-options';
import { fromHex } from '../packet/bytes';
import { globToRegExp } from '../select/glob';
import type { DhcpConfig } from './config';
import { C, COUNTER_DEFS } from './counters';
import { compileScope, ip, FNV_INIT, fnv } from './compile';
import { InformResponder, InformStatus } from './inform';
import { RelayCore, RelayStatus, ReplyTo, hashBytes, hasSubOption } from './relay';
import { RateLimiter } from './ratelimit';
import { sealIpUdp } from './wire';
import { kernelRouteLookup, type RouteLookup } from './route';

export interface DhcpStageOptions {
  /** Interface that reaches a server (default: /proc/net/route). */
  routeLookup?: RouteLookup;
}

const F_INFORM = 1, F_INFORM_RELAYED = 2;

interface IfEntry {
  index: number;
  flags: number;
  /** Bit i: scope i's interface globs match this interface. */
  scopeMask: number;
  /** Relay client interface config index, -1 when none. */
  relay: number;
  addr: number;
  giaddr: number;
  ours82: Uint8Array | null;
  /** The circuit-id inside ours82 (replies must echo exactly this). */
  circuit: Uint8Array | null;
  trusted: boolean;
  /** Has an Ethernet-like hardware address (unicast to chaddr possible). */
  l2: boolean;
}

const NONE: IfEntry = { index: 0, flags: 0, scopeMask: 0, relay: -1, addr: 0, giaddr: 0, ours82: null, circuit: null, trusted: false, l2: false };
const XID_TABLE_MAX = 4096;

export class DhcpStage implements Stage {
  readonly name = 'dhcp';
  /** DHCP fails open: a bug here must not cut clients off from their own DHCP server. */
  readonly failure = 'open';
  readonly counters = new Float64Array(COUNTER_DEFS.length);
  private ids = new Int32Array(COUNTER_DEFS.length);
  private s: StageServices | null = null;
  private readonly inform: InformResponder | null;
  private readonly informGlobs: RegExp[];
  private readonly informRelayGlobs: RegExp[];
  private readonly limiter: RateLimiter | null;
  private readonly relay: RelayCore | null;
  private readonly relayGlobs: RegExp[];
  private readonly servers: { address: number; iface: string | undefined; ifindex: number }[];
  private readonly ifs = new Map<number, IfEntry>();
  /** circuit-id hash → ifindex, and xid → ifindex of requests we relayed (reply fallback). */
  private readonly circuits = new Map<number, number>();
  private readonly xids = new Map<number, number>();
  /**
   * Requests we relayed, keyed (ifindex, xid) → 1 when they carried our 82, 0 when not: a reply is
   * only delivered for a transaction some client on that interface started through us.
   */
  private readonly relayed = new Map<number, number>();
  private readonly remoteId: Uint8Array | null;
  private readonly mac = new Uint8Array(6);
  private readonly routeLookup: RouteLookup;
  /** A route lookup given by the caller (tests) wins over the kernel's. */
  private readonly fixedRoutes: boolean;

  constructor(readonly cfg: DhcpConfig, opts: DhcpStageOptions = {}) {
    this.routeLookup = opts.routeLookup ?? kernelRouteLookup();
    this.fixedRoutes = opts.routeLookup !== undefined;
    const inf = cfg.inform && cfg.inform.enabled ? cfg.inform : null;
    if (inf && inf.scopes.length > 31) throw new Error('dhcp.inform.scopes: at most 31 scopes');
    this.inform = inf ? new InformResponder(inf.scopes.map(compileScope)) : null;
    this.informGlobs = inf ? inf.interfaces.map(globToRegExp) : [];
    this.informRelayGlobs = inf ? inf.relay_interfaces.map(globToRegExp) : [];
    this.limiter = inf ? new RateLimiter(inf.rate_limit.per_client, inf.rate_limit.burst, inf.rate_limit.total, inf.rate_limit.max_clients) : null;
    const rel = cfg.relay && cfg.relay.enabled ? cfg.relay : null;
    this.relay = rel ? new RelayCore(rel.max_hops, rel.agent_info.policy) : null;
    this.relayGlobs = rel ? rel.interfaces.map((i) => globToRegExp(i.name)) : [];
    this.servers = rel ? rel.servers.map((s) => ({ address: ip(s.address), iface: s.interface, ifindex: 0 })) : [];
    const ai = rel?.agent_info;
    this.remoteId = ai?.remote_id_hex ? fromHex(ai.remote_id_hex) : ai?.remote_id ? new TextEncoder().encode(ai.remote_id) : null;
    if (this.remoteId && this.remoteId.length === 0) this.remoteId = null;
  }

  init(services: StageServices): void {
    this.s = services;
    this.ids = Int32Array.from(COUNTER_DEFS, ([n, h]) => services.reason(n, h));
    // One listener per stage instance, removed at close(): a reload builds a new stage, and the old
    // listeners used to pile up on the shared table (one per reload, each clearing a dead cache).
    this.offRefresh?.();
    this.offRefresh = services.interfaces.onRefresh?.(() => { this.ifs.clear(); for (const sv of this.servers) sv.ifindex = 0; }) ?? null;
  }

  private offRefresh: (() => void) | null = null;

  close(): void {
    this.offRefresh?.();
    this.offRefresh = null;
  }

  private count(c: C, n = 1): void {
    this.counters[c] += n;
    this.s?.count(this.ids[c]!, n);
  }

  private drop(d: Decision, c: C): void {
    this.counters[c]++;
    d.drop(this.ids[c]!);
  }

  process(pkt: PacketContext, d: Decision): void {
    const c = pkt.info;
    if (c.ipVersion !== 4 || c.proto !== 17 || c.dport !== PORT_SERVER || c.isFragment) return;
    const e = this.entry(pkt.indev);
    if (c.kind !== Kind.DHCP) {
      if (e.flags !== 0 || e.relay >= 0) this.drop(d, C.MALFORMED);
      return;
    }
    const b = pkt.bytes, q = c.dhcpOffset;
    if (c.dhcpOp === 1) {
      if (this.inform && c.dhcpMessageType === MessageType.INFORM
        && ((e.flags & F_INFORM) !== 0 || ((e.flags & F_INFORM_RELAYED) !== 0 && u32(b, q + GIADDR) !== 0))) {
        if (this.answerInform(pkt, d, e)) return;
      }
      if (this.relay && e.relay >= 0) { this.relayRequest(pkt, d, e); return; }
      if (e.flags !== 0) { this.count(C.PASSED); d.accept(); }
      return;
    }
    // A BOOTREPLY is never answered by the INFORM responder; with the relay on, any BOOTREPLY that
    // reached this stage is for the relay: either it is a trusted server's reply or it is dropped.
    if (this.relay) this.relayReply(pkt, d);
  }

  /** For `sluice trace`: the arrival interface's DHCP roles and the INFORM scope that would answer. */
  explain(pkt: PacketContext): Record<string, unknown> {
    const c = pkt.info;
    if (c.ipVersion !== 4 || c.proto !== 17 || c.dport !== PORT_SERVER || c.isFragment || c.kind !== Kind.DHCP) return { skip: 'not DHCP to port 67' };
    const e = this.entry(pkt.indev);
    const roles = [e.flags & F_INFORM ? 'inform' : '', e.flags & F_INFORM_RELAYED ? 'inform-relayed' : '', e.relay >= 0 ? 'relay' : ''].filter(Boolean);
    const out: Record<string, unknown> = { roles: roles.join(',') || 'none' };
    if (this.inform && c.dhcpOp === 1 && c.dhcpMessageType === MessageType.INFORM) {
      const b = pkt.bytes, q = c.dhcpOffset;
      const si = this.inform.selectScope(e.scopeMask, u32(b, q + GIADDR), u32(b, q + CIADDR) || c.src);
      out.scope = si >= 0 ? this.inform.scopes[si]!.name : '(none)';
    }
    return out;
  }

  /** True when the packet was decided (answered or dropped); false to let the relay or default act. */
  private answerInform(pkt: PacketContext, d: Decision, e: IfEntry): boolean {
    const c = pkt.info, b = pkt.bytes, q = c.dhcpOffset;
    const r = this.inform!;
    const st = r.answer(b, q, c.dhcpLength, c.src, e.scopeMask, e.addr);
    switch (st) {
      case InformStatus.ANSWERED: break;
      case InformStatus.MALFORMED: this.drop(d, C.MALFORMED); return true;
      case InformStatus.NO_DESTINATION: this.drop(d, C.INFORM_NO_DESTINATION); return true;
      case InformStatus.NO_SERVER_ID: this.drop(d, C.INFORM_NO_SERVER_ID); return true;
      case InformStatus.NO_SCOPE:
        this.count(C.INFORM_NO_SCOPE);
        if (e.relay >= 0) return false;
        d.accept();
        return true;
      default: return false;
    }
    // Rate limit per client: arrival interface, client address, chaddr.
    let k = fnv(fnv(FNV_INIT, pkt.indev & 0xff), (pkt.indev >>> 8) & 0xff);
    const ca = u32(b, q + CIADDR) || c.src;
    k = fnv(fnv(fnv(fnv(k, ca >>> 24), (ca >>> 16) & 0xff), (ca >>> 8) & 0xff), ca & 0xff);
    for (let i = 0; i < 16; i++) k = fnv(k, b[q + CHADDR + i]!);
    if (!this.limiter!.allow(k, this.s!.now())) { this.drop(d, C.INFORM_RATE_LIMITED); return true; }
    // The reply leaves through the arrival interface (not by routing): the shared-address case.
    const ok = this.s!.inject(pkt.indev, r.out.subarray(0, r.outLength));
    this.count(ok ? C.INFORM_ANSWERED : C.INFORM_SEND_FAILED);
    d.verdict = Verdict.ANSWERED;
    return true;
  }

  private relayRequest(pkt: PacketContext, d: Decision, e: IfEntry): void {
    const c = pkt.info, b = pkt.bytes, q = c.dhcpOffset;
    const rc = this.relay!;
    const st = rc.request(b, q, c.dhcpLength, e.giaddr || e.addr, e.ours82, e.trusted);
    switch (st) {
      case RelayStatus.FORWARD: break;
      case RelayStatus.HOP_LIMIT: this.drop(d, C.RELAY_HOP_LIMIT); return;
      case RelayStatus.UNTRUSTED_82: this.drop(d, C.RELAY_UNTRUSTED_82); return;
      case RelayStatus.HAS_82: this.drop(d, C.RELAY_HAS_82); return;
      case RelayStatus.NO_GIADDR: this.drop(d, C.RELAY_NO_GIADDR); return;
      default: this.drop(d, C.MALFORMED); return;
    }
    if (e.ours82 !== null && !rc.added82 && this.cfg.relay!.agent_info.policy !== 'forward') this.count(C.RELAY_82_TOO_BIG);
    const xid = u32(b, q + XID);
    if (this.xids.size >= XID_TABLE_MAX) this.xids.delete(this.xids.keys().next().value!);
    this.xids.set(xid, pkt.indev);
    const key = pairKey(pkt.indev, xid);
    this.relayed.delete(key); // re-inserted last: eviction is oldest first
    if (this.relayed.size >= XID_TABLE_MAX) this.relayed.delete(this.relayed.keys().next().value!);
    this.relayed.set(key, rc.added82 ? 1 : 0);
    const s = this.s!;
    for (const sv of this.servers) {
      const ifx = this.serverIf(sv);
      if (ifx === 0) { this.count(C.RELAY_NO_ROUTE); continue; }
      const src = rc.setGiaddr ? rc.giaddr : (s.interfaces.ipv4Of(ifx) || rc.giaddr);
      const n = sealIpUdp(rc.out, src, sv.address, PORT_SERVER, PORT_SERVER, rc.outLength);
      this.count(s.inject(ifx, rc.out.subarray(0, n)) ? C.RELAY_FORWARDED : C.RELAY_SEND_FAILED);
    }
    d.verdict = Verdict.ANSWERED;
  }

  private relayReply(pkt: PacketContext, d: Decision): void {
    const c = pkt.info, b = pkt.bytes, q = c.dhcpOffset;
    if (c.sport !== PORT_SERVER || !this.fromServer(c.src, pkt.indev)) { this.drop(d, C.RELAY_REPLY_NOT_SERVER); return; }
    const rc = this.relay!;
    const st = rc.reply(b, q, c.dhcpLength);
    if (st !== RelayStatus.FORWARD) { this.drop(d, C.MALFORMED); return; }
    const xid = u32(b, q + XID);
    let ifx: number;
    if (rc.o82Length >= 0) {
      // An echoed 82 names the client interface; it must be ours, byte for byte, for a request we
      // relayed from that interface with our 82 (a client-supplied 82 forwarded untouched names
      // whatever the client wanted).
      ifx = rc.circuitHash !== 0 ? (this.circuits.get(rc.circuitHash) ?? 0) : 0;
      const e = ifx !== 0 ? this.entry(ifx) : NONE;
      if (e.circuit === null || !hasSubOption(b, rc.o82Offset, rc.o82Length, RAI_CIRCUIT_ID, e.circuit)
        || (this.remoteId !== null && !hasSubOption(b, rc.o82Offset, rc.o82Length, RAI_REMOTE_ID, this.remoteId))
        || this.relayed.get(pairKey(ifx, xid)) !== 1) { this.drop(d, C.RELAY_REPLY_BAD_82); return; }
    } else {
      ifx = this.xids.get(xid) ?? 0;
      if (ifx === 0 && !this.cfg.relay!.agent_info.enabled) ifx = this.relayIfByAddress(rc.giaddr);
      if (ifx === 0) { this.drop(d, C.RELAY_REPLY_UNKNOWN); return; }
      // With agent_info on, a reply without 82 only answers a request we relayed without ours.
      if (this.cfg.relay!.agent_info.enabled && this.relayed.get(pairKey(ifx, xid)) !== 0) { this.drop(d, C.RELAY_REPLY_BAD_82); return; }
    }
    const e = this.entry(ifx);
    if (e.relay < 0 || (e.giaddr || e.addr) !== rc.giaddr) { this.drop(d, C.RELAY_REPLY_BAD_GIADDR); return; }
    const src = e.addr || rc.giaddr;
    const n = sealIpUdp(rc.out, src, rc.replyDst, PORT_SERVER, PORT_CLIENT, rc.outLength);
    const pk = rc.out.subarray(0, n);
    let ok: boolean;
    if (rc.replyTo === ReplyTo.YIADDR_L2 && e.l2 && b[q + HTYPE] === 1 && b[q + HLEN] === 6) {
      // RFC 2131 4.1: unicast "to the client's hardware address and 'yiaddr' address": no ARP
      // (the client cannot answer ARP for an address it does not have yet).
      for (let i = 0; i < 6; i++) this.mac[i] = b[q + CHADDR + i]!;
      ok = this.s!.injectL2(ifx, this.mac, pk);
    } else {
      ok = this.s!.inject(ifx, pk);
    }
    this.count(ok ? C.RELAY_REPLIED : C.RELAY_SEND_FAILED);
    d.verdict = Verdict.ANSWERED;
  }

  /** A configured server's address, arriving on the interface sluice reaches that server through. */
  private fromServer(src: number, indev: number): boolean {
    for (const sv of this.servers) if (sv.address === src && indev !== 0 && this.serverIf(sv) === indev) return true;
    return false;
  }

  private relayIfByAddress(giaddr: number): number {
    if (giaddr === 0) return 0;
    let found = 0;
    for (const i of this.s!.interfaces.all?.() ?? []) {
      const e = this.entry(i.index);
      if (e.relay >= 0 && (e.giaddr || e.addr) === giaddr) {
        if (found !== 0) return 0; // ambiguous (several ppp interfaces share an address)
        found = i.index;
      }
    }
    return found;
  }

  private serverIf(sv: { address: number; iface: string | undefined; ifindex: number }): number {
    if (sv.ifindex !== 0) return sv.ifindex;
    const ifs = this.s!.interfaces;
    if (sv.iface === undefined && !this.fixedRoutes && ifs.tracking) {
      // The kernel's own lookup (RTM_GETROUTE): every table and `ip rule`, not just main; cached
      // until the interface table changes.
      sv.ifindex = ifs.route(sv.address)?.ifindex ?? 0;
      return sv.ifindex;
    }
    const name = sv.iface ?? this.routeLookup(sv.address);
    sv.ifindex = name ? ifs.indexOf(name) : 0;
    return sv.ifindex;
  }

  /** The cached roles of an interface (built on first sight, dropped on interface refresh). */
  private entry(ifindex: number): IfEntry {
    const have = this.ifs.get(ifindex);
    if (have !== undefined) return have;
    const s = this.s;
    if (!s || ifindex <= 0) return NONE;
    const info = s.interfaces.info?.(ifindex);
    const name = info?.name ?? s.interfaces.nameOf(ifindex);
    if (name === undefined) return NONE;
    const e: IfEntry = { ...NONE, index: ifindex, addr: info?.ipv4 ?? s.interfaces.ipv4Of(ifindex) };
    e.l2 = info ? info.mac.some((x) => x !== 0) : true;
    if (this.informGlobs.some((g) => g.test(name))) e.flags |= F_INFORM;
    if (this.informRelayGlobs.some((g) => g.test(name))) e.flags |= F_INFORM_RELAYED;
    if (this.inform) {
      this.inform.scopes.forEach((sc, i) => { if (sc.ifGlobs && sc.ifGlobs.some((g) => g.test(name))) e.scopeMask |= 1 << i; });
    }
    const ri = this.relayGlobs.findIndex((g) => g.test(name));
    if (ri >= 0) {
      const rcfg = this.cfg.relay!;
      const ic = rcfg.interfaces[ri]!;
      e.relay = ri;
      e.trusted = ic.trusted;
      e.giaddr = ic.giaddr ? ip(ic.giaddr) : 0;
      if (rcfg.agent_info.enabled) {
        const circuit = new TextEncoder().encode(ic.circuit_id ?? name);
        e.circuit = circuit;
        const subs: SubOption[] = [{ code: RAI_CIRCUIT_ID, data: circuit }];
        if (this.remoteId) subs.push({ code: RAI_REMOTE_ID, data: this.remoteId });
        if (ic.link_selection) subs.push({ code: RAI_LINK_SELECTION, data: addrBytes(ip(ic.link_selection)) });
        if (ic.server_id_override !== false) {
          const a = ic.server_id_override === true ? (e.giaddr || e.addr) : ip(ic.server_id_override);
          if (a !== 0) subs.push({ code: RAI_SERVER_ID_OVERRIDE, data: addrBytes(a) });
        }
        const v = new Uint8Array(relayAgentInfo.encodingLength(subs));
        relayAgentInfo.encode(subs, v, 0);
        e.ours82 = v;
        this.circuits.set(hashBytes(circuit, 0, circuit.length), ifindex);
      }
    }
    this.ifs.set(ifindex, e);
    return e;
  }

  tick(nowMs: number): void {
    this.limiter?.sweep(nowMs);
  }

  stats(): Record<string, unknown> {
    return {
      counters: Object.fromEntries(COUNTER_DEFS.map(([n], i) => [n, this.counters[i]])),
      rate_limited_clients: this.limiter?.size ?? 0,
      interfaces: [...this.ifs.values()].filter((e) => e.flags !== 0 || e.relay >= 0).map((e) => e.index),
    };
  }
}

/** One number for (ifindex, xid): ifindex below 2^21 keeps it an exact integer. */
function pairKey(ifindex: number, xid: number): number {
  return (ifindex % 0x200000) * 0x100000000 + (xid >>> 0);
}

function addrBytes(a: number): Uint8Array {
  return Uint8Array.of(a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255);
}


