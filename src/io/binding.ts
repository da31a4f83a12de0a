/**
 * The native addon's shape, and its loader. Everything above src/io talks to the addon through
 * `NativeBinding`, so tests pass a fake (src/io/fake.ts) and run without root or a built addon.
 *
 * The loader checks the addon's exported layout numbers against LAYOUT (batch-layout.ts): an addon
 * built from another version of native/batch_layout.h would read and write the wrong meta slots.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import nodeGypBuild from 'node-gyp-build';
import { LAYOUT } from './batch-layout';

export interface NativeQueueOptions {
  /** Queue number (iptables `--queue-num`). */
  queue: number;
  /** Bytes of each packet copied to userspace (max 65531; 0 = max). */
  copyRange?: number;
  /** Kernel queue length before it drops (or bypasses with failOpen). */
  maxLen?: number;
  /** NFQA_CFG_F_FAIL_OPEN: accept instead of drop when the kernel queue is full. */
  failOpen?: boolean;
  /** NFQA_CFG_F_GSO: receive GSO packets unsegmented (M_SKB_FLAGS has SKB_GSO). */
  gso?: boolean;
  /** NFQA_CFG_F_CONNTRACK (refused with EOPNOTSUPP on kernels without ctnetlink: the open throws). */
  conntrack?: boolean;
  /** Netlink receive buffer; SO_RCVBUFFORCE (root), else SO_RCVBUF capped by rmem_max. */
  rcvbufBytes?: number;
  /** NETLINK_NO_ENOBUFS (default true): overflows show up in the kernel's user_dropped, not as recv errors. */
  noEnobufs?: boolean;
  /** Datagrams per recvmmsg and per JavaScript call (1..1024, default 64). */
  batchSize?: number;
  /** Batches handled per wake-up before yielding to the event loop (default 16). */
  maxRounds?: number;
  /** Verdict the addon sends for a packet whose handler threw before writing one (default V_ACCEPT; V_DROP or V_ACCEPT). */
  defaultVerdict?: number;
  /**
   * Verdict for a packet the addon cannot hand to JavaScript (datagram cut short, unreadable
   * message), and for a verdict slot holding a code the addon may not send (default V_DROP).
   */
  invalidVerdict?: number;
  /** Fault injection (tests): receive at most this many bytes per datagram, forcing MSG_TRUNC. */
  faultRecvLimit?: number;
  /** Fault injection (tests): treat every Nth packet message as unreadable. */
  faultParseEvery?: number;
}

export interface NativeQueueStats {
  received: number;
  batches: number;
  verdicts: number;
  sendmsgCalls: number;
  batchVerdicts: number;
  errors: number;
  enobufs: number;
  heldOutstanding: number;
  /** Datagrams cut short (MSG_TRUNC): their packets got the invalid verdict. */
  truncated: number;
  /** Packet messages that could not be read: their packets got the invalid verdict. */
  unparsed: number;
  /** Packets whose id could not be read at all (VERDICT_BATCH is then off for good). */
  unverdicted: number;
  /** Verdict slots holding a code the addon may not send (the invalid verdict was sent instead). */
  badVerdicts: number;
  /** Rewritten lengths beyond the slot's capacity (sent unchanged). */
  badLengths: number;
  /** release() calls for an id not owed a verdict, or with a verdict the addon may not send (refused). */
  badReleases: number;
  repeatedEarly: number;
  lastErrno: number;
}

/** One bound NFQUEUE. `slab` and `meta` are created once at open and reused for every batch. */
export interface NativeQueue {
  readonly slab: Uint8Array;
  readonly meta: Uint32Array;
  /** Receive buffer size the kernel reports (it doubles what was asked for). */
  readonly rcvbufBytes: number;
  readonly slotSize: number;
  readonly batchSize: number;
  readonly copyRange: number;
  release(id: number, verdict: number, mark: number, payload?: Uint8Array | null): boolean;
  stats(): NativeQueueStats;
  close(): void;
}

export interface NativeTunOptions {
  name?: string;
  batchSize?: number;
  maxPacket?: number;
  maxRounds?: number;
  defaultVerdict?: number;
  /** Open one queue of a multi-queue device (IFF_MULTI_QUEUE): workers: N, one per worker. */
  multiQueue?: boolean;
}

export interface NativeTunStats {
  received: number;
  batches: number;
  written: number;
  dropped: number;
  held: number;
  marksIgnored: number;
  errors: number;
  lastErrno: number;
}

export interface NativeTun {
  readonly slab: Uint8Array;
  readonly meta: Uint32Array;
  readonly name: string;
  readonly ifindex: number;
  readonly batchSize: number;
  write(packet: Uint8Array): boolean;
  stats(): NativeTunStats;
  close(): void;
}

/** An rtnetlink event (native/rtnl.cc). Addresses are IPv4 as unsigned 32-bit numbers. */
export type RtnlEvent =
  | { type: 'link' | 'dellink'; index: number; name: string; mac: Uint8Array; flags: number }
  | { type: 'addr' | 'deladdr'; index: number; address: number; prefixLength: number }
  | { type: 'overflow' };

export interface NativeRtnl {
  /** Links, then IPv4 addresses, as events (synchronous netlink dumps). */
  dump(): RtnlEvent[];
  /** The kernel's route for an IPv4 destination (policy rules with `mark` applied), or null. */
  route(dst: number, mark?: number): { ifindex: number; gateway: number; prefsrc: number; local: boolean } | null;
  close(): void;
}

export interface NativeBinding {
  readonly layout: Readonly<Record<string, number>>;
  /** Interface/address events and route lookups over rtnetlink (absent in fakes). */
  Rtnl?: new (onEvents: (events: RtnlEvent[]) => void) => NativeRtnl;
  NfQueue: new (opts: NativeQueueOptions, onBatch: (count: number) => void) => NativeQueue;
  Tun: new (opts: NativeTunOptions, onBatch: (count: number) => void) => NativeTun;
  /** fd, or -errno. */
  openIp(ifindex: number): number;
  /** 0, or errno. `dst` is the IPv4 destination as an unsigned 32-bit number. */
  sendIp(fd: number, packet: Uint8Array, dst: number): number;
  openL2(ifindex: number): number;
  sendL2(fd: number, ifindex: number, dstMac: Uint8Array, packet: Uint8Array): number;
  closeFd(fd: number): void;
  /** sd_notify: one datagram to $NOTIFY_SOCKET (a path or "@abstract"). 0, or errno. */
  notifySend(socketName: string, message: Uint8Array): number;
}

/** Throws when the addon's layout numbers differ from LAYOUT (names the first differing slot). */
export function checkLayout(layout: Readonly<Record<string, number>> | undefined): void {
  if (!layout) throw new Error('sluice addon exports no layout: rebuild it (npm run build)');
  for (const [k, v] of Object.entries(LAYOUT)) {
    if (layout[k] !== v) {
      throw new Error(`sluice addon batch layout mismatch: ${k} is ${layout[k]} in the addon, ${v} in src/io/batch-layout.ts; rebuild (npm run build)`);
    }
  }
}

/** The root of the package this file belongs to (it runs from src/io or dist/src/io). */
export function packageRoot(): string {
  for (const up of ['../..', '../../..']) {
    const root = resolve(__dirname, up);
    if (existsSync(join(root, 'package.json')) && existsSync(join(root, 'binding.gyp'))) return root;
  }
  return resolve(__dirname, '../../..');
}

/**
 * The addon file node-gyp-build picks for this package: build/Release (a development build, or
 * the install-time fallback build) first, else the prebuild in prebuilds/<platform>-<arch>/ whose
 * tags (napi, glibc/musl) fit this Node.js. Null when there is none.
 */
export function addonPath(): string | null {
  try {
    return nodeGypBuild.resolve(packageRoot());
  } catch {
    return null;
  }
}

let cached: NativeBinding | null = null;

/** Loads the addon once; throws an Error that says what to do when it is missing or stale. */
export function loadBinding(): NativeBinding {
  if (cached) return cached;
  const path = addonPath();
  if (path === null) {
    throw new Error(`no sluice addon for ${process.platform}-${process.arch} in ${packageRoot()} (neither build/Release nor a fitting prebuild): `
      + 'in a checkout run npm run build; in an installed package reinstall it, or build it with npm rebuild -g sluice (needs a compiler; docs/operator.md#install)');
  }
  let b: NativeBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    b = require(path) as NativeBinding;
  } catch (e) {
    throw new Error(`sluice addon at ${path} does not load (${(e as Error).message}): in a checkout run npm run build; `
      + 'an installed prebuild needs glibc and libmnl0 (docs/operator.md#install)');
  }
  checkLayout(b.layout);
  cached = b;
  return b;
}
