/**
 * The `nat:` section: the SPI-keyed ESP/IKE NAT (many IPsec clients behind one public address,
 * without NAT traversal). Validated once at load; the stage compiles it into numbers.
 */
import { z } from 'zod';

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const ipv4 = z.string().regex(IPV4, 'an IPv4 address like 203.0.113.1');
const prefix = z.string().refine((s) => {
  const [a, l, ...rest] = s.split('/');
  if (rest.length > 0 || !IPV4.test(a)) return false;
  return l === undefined || (/^\d{1,2}$/.test(l) && Number(l) <= 32);
}, 'an IPv4 address or prefix like 198.51.100.0/24');

export const natLimitsSchema = z.object({
  /** Every SA record (IKE SAs, inbound and outbound ESP SAs); new ones beyond this are refused and counted. */
  max_sas: z.number().int().min(16).max(16_777_216).default(1_048_576),
  max_sas_per_host: z.number().int().min(2).default(256),
  max_hosts_per_server: z.number().int().min(1).default(4096),
  /** Learning turns (windows and probes) running at the same time, one per (public, server) at most. */
  max_windows: z.number().int().min(1).default(4096),
  /** ... of which one LAN host may run at once (one per server it talks to). */
  max_windows_per_host: z.number().int().min(1).default(16),
  /** Packets the NAT holds at once (IKE behind a window, first ESP behind a probe, ambiguous inbound). */
  max_held: z.number().int().min(0).default(1024),
  /** ... of which one LAN host may cause (one host cannot starve the others). */
  max_held_per_host: z.number().int().min(0).default(32),
  /** ... of which one (public, server) may take. */
  max_held_per_server: z.number().int().min(0).default(256),
  /** Ambiguous inbound SPIs tracked per (public, server). */
  max_pending: z.number().int().min(1).default(64),
  max_hosts: z.number().int().min(1).default(65536),
}).strict();

export const natTimeoutsSchema = z.object({
  /** IKE SA records idle this long are removed; a host's owed SAs end with its last IKE SA to a server. */
  ike_idle_s: z.number().positive().default(3600),
  /** ESP records idle this long in both directions of their SA are removed. */
  esp_idle_s: z.number().positive().default(900),
  /**
   * Longest a learning window waits for its exchange's response while other hosts' SA-creating
   * messages are held (clients retransmit IKE after 0.5–2 s: keep it near one second).
   */
  window_max_ms: z.number().int().min(50).max(60_000).default(1000),
  /** After the exchange's response, how long the window stays open for the server's first packet on the new SA. */
  window_settle_ms: z.number().int().min(0).max(60_000).default(150),
  /**
   * How long a probe (a host's first packet on a new SA) waits for the server's reply while other
   * hosts wait; it ends as soon as the reply comes. A reply later than this may be taken for the next
   * prober's: keep it above the servers' reply time (strongSwan with kernel-libipsec under load: a
   * few hundred ms).
   */
  probe_ms: z.number().int().min(10).max(60_000).default(1000),
  /** How long an inbound packet on an ambiguous SPI is held before it is dropped (counted). */
  pending_hold_ms: z.number().int().min(0).max(600_000).default(2000),
  /** An ambiguous SPI with no packet for this long is forgotten. */
  pending_idle_s: z.number().positive().default(120),
  /** Longest any packet stays held by the NAT (it may wait through several learning turns); then dropped. */
  hold_ms: z.number().int().min(50).default(10000),
  /** A host with no SA, window or expectation left forgets its public-address binding after this. */
  host_idle_s: z.number().positive().default(3600),
}).strict().refine((t) => t.hold_ms >= t.window_max_ms + t.window_settle_ms && t.hold_ms >= t.probe_ms, {
  message: 'hold_ms must be at least window_max_ms + window_settle_ms and at least probe_ms (a held message would time out before its turn ends)',
  path: ['hold_ms'],
});

export const natConfigSchema = z.object({
  enabled: z.boolean().default(true),
  /** Public address(es) on the WAN side. A LAN host is bound to one of them (sticky). */
  public: z.array(ipv4).min(1).max(255),
  /** WAN interface (for the generated rules). */
  wan_interface: z.string().min(1),
  /** LAN interfaces the IPsec clients sit behind; empty = any interface but the WAN one. */
  lan_interfaces: z.array(z.string().min(1)).default([]),
  /** IPsec servers sluice translates for: `any`, or a list of addresses/prefixes (opt-in). */
  servers: z.union([z.literal('any'), z.array(prefix).min(1)]).default('any'),
  /** NFQUEUE number both directions are queued to (the engine's `queues:` section must list it). */
  queue: z.number().int().min(0).max(65535).default(0),
  /** Inbound ESP/IKE to a public address that matches no mapping: drop (counted) or leave to the local IPsec stack. */
  unknown_inbound: z.enum(['drop', 'local']).default('drop'),
  /** Inbound IKE_SA_INIT / Main / Aggressive Mode requests from a server, forwarded to a fixed LAN host. */
  static_forwards: z.array(z.object({
    server: prefix,
    host: ipv4,
  }).strict()).default([]),
  limits: natLimitsSchema.prefault({}),
  timeouts: natTimeoutsSchema.prefault({}),
  journal: z.object({
    /**
     * Append-only journal of learned mappings (null: memory only). A relative path is resolved
     * against `state_dir` (default /var/lib/sluice, which survives a reboot; /run does not).
     */
    path: z.string().min(1).nullable().default('nat.journal'),
    /** Compact when the journal holds this many more lines than live records. */
    compact_slack: z.number().int().min(16).default(4096),
    /**
     * When changes reach the disk itself (every change is written to the kernel at the moment it
     * happens, so kill -9 loses nothing either way): `batch` fdatasyncs every sync_interval_ms (a power
     * cut loses at most that much), `always` after every write (a power cut loses at most the write in
     * flight), `none` never (a power cut loses what the kernel had not written back, up to ~30 s).
     */
    sync: z.enum(['batch', 'always', 'none']).default('batch'),
    sync_interval_ms: z.number().int().min(1).max(60_000).default(100),
  }).strict().prefault({}),
}).strict();

export type NatConfig = z.infer<typeof natConfigSchema>;
export type NatConfigInput = z.input<typeof natConfigSchema>;
