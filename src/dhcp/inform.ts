/**
 * DHCPINFORM responder core: request bytes in, a complete IPv4/UDP DHCPACK out (in a buffer owned
 * here, reused for every answer). No StageServices: the stage picks the interface and sends.
 *
 * Flow: one walk of the request's options (53, 55, 82; RFC 3396 concatenation and overload by the
 * packet layer's iterator) → scope (arrival interface, giaddr, client address; first match) → ACK:
 *   RFC 2131 4.3.5: "The server responds to a DHCPINFORM message by sending a DHCPACK message directly
 *   to the address given in the 'ciaddr' field of the DHCPINFORM message. The server MUST NOT send a
 *   lease expiration time to the client and SHOULD NOT fill in 'yiaddr'."
 * Options: 53, 54, then 1 if configured, then what option 55 asks for in its order (RFC 2132 9.8: the
 * server "MUST try to insert the requested options in the order requested by the client"), each only
 * when configured; without 55 every configured option. 82 is echoed last (RFC 3046 2.2: the server
 * "MUST copy the Relay Agent Information option as received ... into the DHCP reply").
 */
import { u32, setU32 } from '../packet/bytes';
import {
  DhcpOptionIter, CIADDR, GIADDR, MAGIC_COOKIE, OPTIONS, OP_REQUEST, HEADER_LEN as DHCP_HLEN,
  OPT_MESSAGE_TYPE, OPT_PARAM_REQUEST, OPT_RELAY_AGENT, OPT_SERVER_ID, OPT_SUBNET_MASK, OPT_ROUTER,
  OPT_CLASSLESS_ROUTES, OPT_END, PORT_CLIENT, PORT_SERVER, BOOTP_MIN_LEN, MessageType,
} from '../packet/dhcp';
import { ParseError } from '../packet/errors';
import { type CompiledScope, inPrefixes } from './compile';
import { DHCP_AT, putOption, sealIpUdp } from './wire';

export const enum InformStatus {
  ANSWERED = 0,
  /** Not a BOOTREQUEST with option 53 = DHCPINFORM: not ours to answer. */
  NOT_INFORM = 1,
  NO_SCOPE = 2,
  MALFORMED = 3,
  /** ciaddr 0 and IP source 0, not relayed: nowhere to send the ACK. */
  NO_DESTINATION = 4,
  /** Neither the scope nor the arrival interface has an address for option 54 / the source. */
  NO_SERVER_ID = 5,
}

const MAX_82 = 16;

export class InformResponder {
  /** The last built reply: an IPv4 packet in out[0, outLength), to outDst. */
  readonly out: Uint8Array;
  outLength = 0;
  outDst = 0;
  outSrc = 0;
  /** The scope that answered (index), and the client address the answer went to. */
  scope = -1;
  private readonly it = new DhcpOptionIter();
  private readonly req55 = new Uint8Array(2048);
  private n55 = -1;
  private readonly at82 = new Int32Array(MAX_82);
  private readonly len82 = new Int32Array(MAX_82);
  private n82 = 0;
  private readonly sent = new Uint8Array(256);

  constructor(readonly scopes: readonly CompiledScope[]) {
    let worst = 0;
    for (const s of scopes) worst = Math.max(worst, s.encodedLength);
    // header + 53 + 54 + options + echoed 82 (at most the request's size) + End, at least 300 bytes.
    this.out = new Uint8Array(DHCP_AT + DHCP_HLEN + 3 + 6 + worst + 65536 + 1 + BOOTP_MIN_LEN);
  }

  /** The first scope whose every given criterion matches; ifMask has bit i set when scope i's globs match the arrival interface. */
  selectScope(ifMask: number, giaddr: number, client: number): number {
    const sc = this.scopes;
    for (let i = 0; i < sc.length; i++) {
      const s = sc[i]!;
      if (s.ifGlobs !== null && ((ifMask >>> i) & 1) === 0) continue;
      if (s.giaddr !== null && (giaddr === 0 || !inPrefixes(s.giaddr, giaddr))) continue;
      if (s.ciaddr !== null && (client === 0 || !inPrefixes(s.ciaddr, client))) continue;
      return i;
    }
    return -1;
  }

  /**
   * Answers the DHCP message at b[dhcpOff, dhcpOff + dhcpLen) (UDP data) that came from IP source
   * ipSrc on an interface with address ifAddr. On ANSWERED the reply is in out[0, outLength).
   */
  answer(b: Uint8Array, dhcpOff: number, dhcpLen: number, ipSrc: number, ifMask: number, ifAddr: number): InformStatus {
    const it = this.it.reset(b, dhcpOff, dhcpLen);
    if (it.error !== ParseError.NONE) return InformStatus.MALFORMED;
    if (b[dhcpOff] !== OP_REQUEST) return InformStatus.NOT_INFORM;
    let mt = 0;
    this.n55 = -1;
    this.n82 = 0;
    while (it.next()) {
      const c = it.code;
      if (c === OPT_MESSAGE_TYPE) {
        if (it.dataLength !== 1 || mt !== 0) return InformStatus.MALFORMED;
        mt = b[it.dataOffset]!;
      } else if (c === OPT_PARAM_REQUEST) {
        // RFC 3396: instances concatenate, in iterator order.
        let n = this.n55 < 0 ? 0 : this.n55;
        for (let i = 0; i < it.dataLength && n < this.req55.length; i++) this.req55[n++] = b[it.dataOffset + i]!;
        this.n55 = n;
      } else if (c === OPT_RELAY_AGENT) {
        if (this.n82 === MAX_82) return InformStatus.MALFORMED;
        this.at82[this.n82] = it.dataOffset;
        this.len82[this.n82++] = it.dataLength;
      }
    }
    if (it.error !== ParseError.NONE) return InformStatus.MALFORMED;
    if (mt !== MessageType.INFORM) return InformStatus.NOT_INFORM;
    const ciaddr = u32(b, dhcpOff + CIADDR);
    const giaddr = u32(b, dhcpOff + GIADDR);
    const client = ciaddr !== 0 ? ciaddr : ipSrc;
    const si = this.selectScope(ifMask, giaddr, client);
    if (si < 0) return InformStatus.NO_SCOPE;
    const scope = this.scopes[si]!;
    this.scope = si;
    // Where the ACK goes: a relay (giaddr:67), else ciaddr:68, else the request's source.
    let dst: number, dport: number;
    if (giaddr !== 0) { dst = giaddr; dport = PORT_SERVER; }
    else if (ciaddr !== 0) { dst = ciaddr; dport = PORT_CLIENT; }
    else if (ipSrc !== 0) { dst = ipSrc; dport = PORT_CLIENT; }
    else return InformStatus.NO_DESTINATION;
    const serverId = scope.serverId !== 0 ? scope.serverId : ifAddr;
    const src = ifAddr !== 0 ? ifAddr : serverId;
    if (serverId === 0) return InformStatus.NO_SERVER_ID;
    const len = this.buildAck(b, dhcpOff, scope, serverId);
    this.outLength = sealIpUdp(this.out, src, dst, PORT_SERVER, dport, len);
    this.outDst = dst;
    this.outSrc = src;
    return InformStatus.ANSWERED;
  }

  /** Writes the DHCPACK at out[DHCP_AT]; returns its length. */
  private buildAck(b: Uint8Array, q: number, scope: CompiledScope, serverId: number): number {
    const o = this.out;
    const a = DHCP_AT;
    // RFC 2131 Table 3 (DHCPACK): op BOOTREPLY; htype, hlen, xid, flags, giaddr, chaddr from the
    // request; ciaddr "'ciaddr' from DHCPREQUEST or 0" — for INFORM the client's; yiaddr 0 here;
    // secs 0; sname/file unused. hops is echoed (as dnsmasq and ISC dhcpd do) rather than zeroed.
    o.fill(0, a, a + OPTIONS);
    o[a] = 2;
    o[a + 1] = b[q + 1]!;
    o[a + 2] = b[q + 2]!;
    o[a + 3] = b[q + 3]!;
    for (let i = 4; i < 8; i++) o[a + i] = b[q + i]!; // xid
    o[a + 10] = b[q + 10]!; o[a + 11] = b[q + 11]!; // flags
    for (let i = 12; i < 16; i++) o[a + i] = b[q + i]!; // ciaddr
    for (let i = 24; i < 44; i++) o[a + i] = b[q + i]!; // giaddr, chaddr
    setU32(o, a + 236, MAGIC_COOKIE);
    let p = a + OPTIONS;
    o[p++] = OPT_MESSAGE_TYPE; o[p++] = 1; o[p++] = MessageType.ACK;
    o[p++] = OPT_SERVER_ID; o[p++] = 4; setU32(o, p, serverId); p += 4;
    const v = scope.values;
    const sent = this.sent;
    sent.fill(0);
    sent[OPT_MESSAGE_TYPE] = 1; sent[OPT_SERVER_ID] = 1;
    if (this.n55 >= 0) {
      const mask = v[OPT_SUBNET_MASK];
      if (mask) { p = putOption(o, p, OPT_SUBNET_MASK, mask, 0, mask.length); sent[OPT_SUBNET_MASK] = 1; }
      // RFC 3442: "If the DHCP server returns both a Classless Static Routes option and a Router
      // option, the DHCP client MUST ignore the Router option." Leave 3 out unless configured.
      let wants121 = false;
      for (let i = 0; i < this.n55; i++) if (this.req55[i] === OPT_CLASSLESS_ROUTES) { wants121 = true; break; }
      if (wants121 && v[OPT_CLASSLESS_ROUTES] && !scope.routersWithClassless) sent[OPT_ROUTER] = 1;
      for (let i = 0; i < this.n55; i++) {
        const c = this.req55[i]!;
        const val = v[c];
        if (!val || sent[c]) continue;
        sent[c] = 1;
        p = putOption(o, p, c, val, 0, val.length);
      }
    } else {
      for (const c of scope.order) { const val = v[c]!; p = putOption(o, p, c, val, 0, val.length); }
    }
    // Echo 82 instance by instance (keeps an RFC 3396 split as received).
    for (let i = 0; i < this.n82; i++) p = putOption(o, p, OPT_RELAY_AGENT, b, this.at82[i]!, this.len82[i]!);
    o[p++] = OPT_END;
    let len = p - a;
    if (len < BOOTP_MIN_LEN) { o.fill(0, p, a + BOOTP_MIN_LEN); len = BOOTP_MIN_LEN; }
    return len;
  }
}
