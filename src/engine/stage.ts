/**
 * The one small interface every stage implements, and the decision it writes.
 *
 * Flow per packet: the engine fills a reusable PacketContext (a view into the batch slab, plus the
 * packet already classified once by the packet layer), resets one reusable Decision, and calls each
 * stage's process() in order until one sets a final verdict. Nothing here allocates per packet.
 */
import type { Interfaces } from '../io/interfaces';
import type { Classified } from '../packet/classify';

/**
 * Netfilter hook numbers (the kernel's NF_INET_*) as NFQUEUE reports them in PacketContext.hook;
 * the addon copies the number through. Plain constants, not a re-export: a re-exported binding is
 * an accessor on the module object, and a stage reading it per packet would pay a getter call.
 */
export const HOOK_PREROUTING = 0;
export const HOOK_INPUT = 1;
export const HOOK_FORWARD = 2;
export const HOOK_OUTPUT = 3;
export const HOOK_POSTROUTING = 4;
/** The interface table as stages see it (names, indexes, addresses; refreshed by the engine). */
export type { Interfaces, InterfaceInfo } from '../io/interfaces';

/** What a stage decided. CONTINUE hands the packet to the next stage; the others end the pipeline. */
export const enum Verdict {
  CONTINUE = 0,
  ACCEPT = 1,
  DROP = 2,
  /** The stage called services.hold(): the packet keeps its verdict slot until released or timed out. */
  HOLD = 3,
  /** The stage answered the packet itself (e.g. a DHCPINFORM); the original is consumed (dropped). */
  ANSWERED = 4,
}

/** The packet as a stage sees it. Reused for every packet: never keep a reference past process(). */
export interface PacketContext {
  /** The slab (or a held packet's own copy); the packet is bytes[offset, offset + length). */
  bytes: Uint8Array;
  offset: number;
  length: number;
  /** Bytes writable from offset, for in-place rewrites that grow the packet. */
  capacity: number;
  /** Mark at enqueue time, updated as stages set marks. */
  mark: number;
  indev: number;
  outdev: number;
  /** Netfilter hook (HOOK_* above); -1 for a TUN source. */
  hook: number;
  /** Queue number (NFQUEUE) or source id (TUN). */
  queue: number;
  /** The packet layer's one-time classification of bytes[offset..]. */
  readonly info: Classified;
}

/** Reusable, reset by the engine before each packet. */
export class Decision {
  verdict: Verdict = Verdict.CONTINUE;
  /** Drop reason id from the DropReasons registry, meaningful when verdict is DROP. */
  reason = 0;
  /** Mark to apply on the way out when markMask != 0: mark = (mark & ~markMask) ^ markValue. */
  markValue = 0;
  markMask = 0;
  /** Set by a stage that changed the bytes; the packet's length is then ctx.length. */
  rewritten = false;

  reset(): void {
    this.verdict = Verdict.CONTINUE;
    this.reason = 0;
    this.markValue = 0;
    this.markMask = 0;
    this.rewritten = false;
  }

  accept(): void { this.verdict = Verdict.ACCEPT; }

  drop(reason: number): void {
    this.verdict = Verdict.DROP;
    this.reason = reason;
  }

  /** iptables MARK --set-xmark semantics: zero the bits in mask, then XOR value. */
  setMark(value: number, mask = 0xffffffff): void {
    this.markValue = (((this.markValue & ~mask) ^ value) >>> 0);
    this.markMask = (this.markMask | mask) >>> 0;
  }
}

/** What the engine offers stages besides the packet. */
export interface StageServices {
  /** Registers a drop/event reason once (at init) and returns its id for Decision.drop(). */
  reason(name: string, help: string): number;
  /** Counts an event that is not a drop (e.g. "nat.window.opened"); ids come from reason(). */
  count(id: number, n?: number): void;
  /**
   * Holds the packet now in process(): copies it out of the slab and returns a handle. The stage
   * must then set Verdict.HOLD. After timeoutMs (or the configured default) the engine applies the
   * configured default verdict and calls the stage's onHoldExpired(handle).
   * Returns -1 when the hold cap is reached (counted); the stage then decides now.
   */
  hold(timeoutMs?: number): number;
  /** Re-runs the held packet through the pipeline from the holding stage on, then sends its verdict. */
  release(handle: number): void;
  /** Ends a held packet with a plain verdict. */
  releaseWith(handle: number, verdict: Verdict.ACCEPT | Verdict.DROP): void;
  /**
   * Sends a complete IPv4 packet out of interface ifindex (raw IP socket bound to the device; the
   * kernel routes by the packet's destination within that device, no ARP on point-to-point links).
   */
  inject(ifindex: number, packet: Uint8Array): boolean;
  /** Sends an IPv4 packet in an Ethernet frame to dstMac (6 bytes) on ifindex (no ARP needed). */
  injectL2(ifindex: number, dstMac: Uint8Array, packet: Uint8Array): boolean;
  /** Interface names, indexes and addresses (refreshed by the engine). */
  readonly interfaces: Interfaces;
  /** Milliseconds, monotonic, cached per batch (cheap to call per packet). */
  now(): number;
  /** The handle of the held packet being re-run after release(), or -1 (a packet of a batch). */
  heldHandle?(): number;
}

/**
 * How a stage fails, declared by every stage (GUIDE: policy and NAT fail closed for the packets they
 * own, steer and DHCP fail open).
 * - 'closed': a packet the stage throws on is dropped; a packet it holds is dropped when the hold
 *   times out, at shutdown, and when a reload removes the stage (NAT: the peer retransmits, and
 *   nothing leaves untranslated).
 * - 'open': a packet the stage throws on goes on to the next stage as if the stage were not there
 *   (its decision, mark and rewrite flag undone); a packet it holds gets `held.default_verdict`.
 * Either way the throw is counted per stage (`engine.stage_error.<stage>`) and logged, rate-limited,
 * with the packet's `sluice decode` summary.
 */
export type StageFailure = 'open' | 'closed';

export interface Stage {
  readonly name: string;
  readonly failure: StageFailure;
  /** Called once when the pipeline is built (and again after a reload builds a new pipeline). */
  init?(services: StageServices): void;
  process(pkt: PacketContext, d: Decision): void;
  /**
   * For `sluice trace` only (never called when nobody traces): what this stage's tables say about
   * the packet, just before process() sees it — the rule it matches, its NAT mapping and learning
   * state, its DHCP scope. Reads only; changes nothing.
   */
  explain?(pkt: PacketContext): Record<string, unknown>;
  onHoldExpired?(handle: number): void;
  /**
   * Called before a batch's first packet and after its last (and after the held packets released
   * and the ticks run in it), before its verdicts go to the kernel: a stage that writes state for
   * its decisions (the NAT journal) writes once per batch, and still before any verdict is sent.
   */
  batchStart?(): void;
  batchEnd?(): void;
  /** Periodic housekeeping (idle timeouts), called between batches at most every `tickMs`. */
  tick?(nowMs: number): void;
  /** How often this stage wants tick() (default: the engine's tickMs); the engine checks every 20 ms. */
  readonly tickMs?: number;
  /** Counters and state for `sluice stats` (plain JSON). */
  stats?(): Record<string, unknown>;
  /** Gauges for the metrics endpoint (alarms such as a degraded journal), read at scrape time. */
  gauges?(): { name: string; help: string; value: number }[];
  /**
   * Control-socket commands addressed to this stage (e.g. the NAT stage's `sa-list`, `sa-pin`).
   * Unknown commands throw an Error whose message is shown to the operator.
   */
  command?(name: string, args: Record<string, unknown>): unknown | Promise<unknown>;
  close?(): void | Promise<void>;
}
