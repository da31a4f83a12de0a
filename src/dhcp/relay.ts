/**
 * DHCP relay agent core: bytes in, the message to send out (in a buffer owned here). The stage
 * chooses interfaces and sends; this file decides what the message says.
 *
 * Client → server (RFC 1542 4.1.1): discard when hops is at the limit; "If this field is zero, the
 * relay agent MUST fill this field with the IP address of the interface on which the request was
 * received ... If the field is non-zero, the relay agent MUST NOT modify it"; hops + 1; option 82
 * (RFC 3046) appended as the last option, under a policy for requests that already carry one.
 * Server → client (RFC 1542 4.1.2, RFC 3046 2.1): "The relay agent MUST remove the option before
 * forwarding the reply to the client"; where to send it is decided by the stage from `replyTo`.
 */
import { u32, setU32 } from '../packet/bytes';
import {
  DhcpOptionIter, OptionRegion, CIADDR, GIADDR, YIADDR, FLAGS, OPTIONS, HOPS,
  OP_REQUEST, OP_REPLY, OPT_MESSAGE_TYPE, OPT_RELAY_AGENT, OPT_END, FLAG_BROADCAST, BOOTP_MIN_LEN, MessageType,
} from '../packet/dhcp';
import { RAI_CIRCUIT_ID } from '../packet/dhcp-options';
import { ParseError } from '../packet/errors';
import { DHCP_AT, putOption } from './wire';
import { FNV_INIT, fnv } from './compile';

export const enum RelayStatus {
  FORWARD = 0,
  MALFORMED = 1,
  HOP_LIMIT = 2,
  /** RFC 3046 2.1: 82 present with giaddr 0 on an untrusted circuit. */
  UNTRUSTED_82 = 3,
  /** Policy `discard` and the request already carries 82. */
  HAS_82 = 4,
  NO_GIADDR = 5,
  NOT_REQUEST = 6,
  NOT_REPLY = 7,
}

export type Policy82 = 'append' | 'replace' | 'forward' | 'discard';

/** How the reply reaches the client (RFC 2131 4.1 / RFC 1542 4.1.2). */
export const enum ReplyTo { BROADCAST = 0, CIADDR = 1, YIADDR_L2 = 2 }

/** Largest DHCP message sluice forwards (1500-byte MTU minus IP and UDP headers). */
export const MAX_DHCP = 1472;

export class RelayCore {
  readonly out = new Uint8Array(DHCP_AT + 65536 + BOOTP_MIN_LEN);
  /** Length of the DHCP message at out[DHCP_AT]. */
  outLength = 0;
  /** giaddr as forwarded (request), or as found (reply). */
  giaddr = 0;
  /** Whether this relay wrote giaddr (so replies come back to it). */
  setGiaddr = false;
  /** Replies: the circuit-id hash from the echoed 82 (0: none), where to send, the client's address. */
  circuitHash = 0;
  /** Replies: where the first echoed 82's value sits in the input (length -1: no 82). */
  o82Offset = 0;
  o82Length = -1;
  replyTo: ReplyTo = ReplyTo.BROADCAST;
  replyDst = 0;
  /** Requests: 82 added by us (false when forwarded untouched or when it would not fit). */
  added82 = false;
  private readonly it = new DhcpOptionIter();

  constructor(readonly maxHops: number, readonly policy: Policy82) {}

  /**
   * Rewrites the request at b[q, q+len) into out: giaddr (when 0) := giaddr, hops + 1, our option 82
   * value `ours` (null: add none). `trusted`: RFC 3046 2.1 untrusted-circuit rule does not apply.
   */
  request(b: Uint8Array, q: number, len: number, giaddr: number, ours: Uint8Array | null, trusted: boolean): RelayStatus {
    const it = this.it.reset(b, q, len);
    if (it.error !== ParseError.NONE) return RelayStatus.MALFORMED;
    if (b[q] !== OP_REQUEST) return RelayStatus.NOT_REQUEST;
    let n82 = 0;
    while (it.next()) if (it.code === OPT_RELAY_AGENT) n82++;
    if (it.error !== ParseError.NONE) return RelayStatus.MALFORMED;
    // RFC 1542 4.1.1: "The relay agent MUST silently discard BOOTREQUEST messages whose 'hops' field
    // exceeds the value 16"; the configured limit is at most 16.
    const hops = b[q + HOPS]!;
    if (hops >= this.maxHops) return RelayStatus.HOP_LIMIT;
    const g = u32(b, q + GIADDR);
    // RFC 3046 2.1: "Relay agents receiving a DHCP packet from an untrusted circuit with giaddr set
    // to zero (indicating that they are the first-hop router) but with a Relay Agent Information
    // option already present in the packet SHALL discard the packet and increment an error count."
    if (n82 > 0 && g === 0 && !trusted) return RelayStatus.UNTRUSTED_82;
    if (n82 > 0 && this.policy === 'discard') return RelayStatus.HAS_82;
    const keepTheirs = !(n82 > 0 && this.policy === 'replace');
    const addOurs = ours !== null && (n82 === 0 || this.policy === 'append' || this.policy === 'replace');
    this.setGiaddr = g === 0;
    const gi = g !== 0 ? g : giaddr;
    if (gi === 0) return RelayStatus.NO_GIADDR;
    this.giaddr = gi;
    const o = this.out;
    const a = DHCP_AT;
    for (let i = 0; i < OPTIONS; i++) o[a + i] = b[q + i]!;
    o[a + HOPS] = hops + 1;
    setU32(o, a + GIADDR, gi);
    // Re-emit the options-field instances (Pad dropped); file/sname overload areas travel in the
    // copied header untouched.
    let p = a + OPTIONS;
    it.reset(b, q, len);
    while (it.next()) {
      if (it.region !== OptionRegion.OPTIONS) continue;
      if (it.code === OPT_RELAY_AGENT && !keepTheirs) continue;
      p = putOption(o, p, it.code, b, it.dataOffset, it.dataLength);
    }
    // RFC 3046 2.1: the option is added "as the last DHCP option"; skipped when the message would
    // outgrow the MTU (the request then goes on without it).
    this.added82 = false;
    if (addOurs && p - a + ours!.length + 4 <= MAX_DHCP) {
      p = putOption(o, p, OPT_RELAY_AGENT, ours!, 0, ours!.length);
      this.added82 = true;
    }
    o[p++] = OPT_END;
    let n = p - a;
    if (n < BOOTP_MIN_LEN) { o.fill(0, p, a + BOOTP_MIN_LEN); n = BOOTP_MIN_LEN; }
    this.outLength = n;
    return RelayStatus.FORWARD;
  }

  /** Rewrites a server's reply at b[q, q+len) for the client: 82 removed; sets circuitHash/replyTo. */
  reply(b: Uint8Array, q: number, len: number): RelayStatus {
    const it = this.it.reset(b, q, len);
    if (it.error !== ParseError.NONE) return RelayStatus.MALFORMED;
    if (b[q] !== OP_REPLY) return RelayStatus.NOT_REPLY;
    const o = this.out;
    const a = DHCP_AT;
    let mt = 0;
    this.circuitHash = 0;
    this.o82Length = -1;
    let p = a + OPTIONS;
    while (it.next()) {
      const c = it.code;
      if (c === OPT_MESSAGE_TYPE && it.dataLength === 1) mt = b[it.dataOffset]!;
      if (c === OPT_RELAY_AGENT) {
        if (this.o82Length < 0) {
          this.circuitHash = circuitHashIn(b, it.dataOffset, it.dataLength);
          this.o82Offset = it.dataOffset;
          this.o82Length = it.dataLength;
        }
        continue;
      }
      if (it.region === OptionRegion.OPTIONS) p = putOption(o, p, c, b, it.dataOffset, it.dataLength);
    }
    if (it.error !== ParseError.NONE) return RelayStatus.MALFORMED;
    for (let i = 0; i < OPTIONS; i++) o[a + i] = b[q + i]!;
    o[p++] = OPT_END;
    let n = p - a;
    if (n < BOOTP_MIN_LEN) { o.fill(0, p, a + BOOTP_MIN_LEN); n = BOOTP_MIN_LEN; }
    this.outLength = n;
    this.giaddr = u32(b, q + GIADDR);
    const ciaddr = u32(b, q + CIADDR);
    const yiaddr = u32(b, q + YIADDR);
    const bcast = (((b[q + FLAGS]! << 8) | b[q + FLAGS + 1]!) & FLAG_BROADCAST) !== 0;
    // RFC 2131 4.1: "If the broadcast bit is set [...] broadcast"; a NAK always goes by broadcast;
    // an ACK to an INFORM (ciaddr set) goes to ciaddr; else "unicasts ... to the client's hardware
    // address and 'yiaddr' address".
    if (bcast || mt === MessageType.NAK) { this.replyTo = ReplyTo.BROADCAST; this.replyDst = 0xffffffff; }
    else if (ciaddr !== 0) { this.replyTo = ReplyTo.CIADDR; this.replyDst = ciaddr; }
    else if (yiaddr !== 0) { this.replyTo = ReplyTo.YIADDR_L2; this.replyDst = yiaddr; }
    else { this.replyTo = ReplyTo.BROADCAST; this.replyDst = 0xffffffff; }
    return RelayStatus.FORWARD;
  }
}

/** Hash of the circuit-id sub-option inside an 82 value (0 when absent or malformed). */
export function circuitHashIn(b: Uint8Array, off: number, len: number): number {
  const at = subOptionAt(b, off, len, RAI_CIRCUIT_ID);
  return at < 0 ? 0 : hashBytes(b, at + 2, b[at + 1]!);
}

/** Offset of sub-option `code` (its code byte) inside an 82 value; -1 when absent or malformed. */
export function subOptionAt(b: Uint8Array, off: number, len: number, code: number): number {
  const end = off + len;
  for (let p = off; p + 2 <= end;) {
    const l = b[p + 1]!;
    if (p + 2 + l > end) return -1;
    if (b[p] === code) return p;
    p += 2 + l;
  }
  return -1;
}

/** True when the 82 value at b[off, off+len) carries sub-option `code` with exactly `want`. */
export function hasSubOption(b: Uint8Array, off: number, len: number, code: number, want: Uint8Array): boolean {
  const at = subOptionAt(b, off, len, code);
  if (at < 0 || b[at + 1] !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (b[at + 2 + i] !== want[i]) return false;
  return true;
}

export function hashBytes(b: Uint8Array, off: number, len: number): number {
  let h = FNV_INIT;
  for (let i = 0; i < len; i++) h = fnv(h, b[off + i]!);
  return h === 0 ? 1 : h;
}


