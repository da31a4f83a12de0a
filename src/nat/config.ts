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
  /** Learning windows open at the same time (one per (public, server) at most). */
  max_windows: z.number().int().min(1).default(4096),
  /** SA-creating IKE messages held while another host's window is open. */
  max_held: z.number().int().min(0).default(1024),
  max_hosts: z.number().int().min(1).default(65536),
}).strict();

export const natTimeoutsSchema = z.object({
  ike_idle_s: z.number().positive().default(3600),
  esp_idle_s: z.number().positive().default(900),
  /**
   * Longest a learning window stays open. A CHILD_SA responder such as strongSwan keeps sending on
   * the old SA until the delete exchange has finished, so the first ESP on the new inbound SPI comes
   * one more round trip (and possibly one retransmission) after the CREATE_CHILD_SA response.
   */
  window_max_ms: z.number().int().min(50).default(8000),
  /** How long a window that closed without learning leaves its host an unresolved expectation. */
  expectation_idle_s: z.number().positive().default(120),
  /** Hold timeout for a held IKE message; longer than window_max_ms so a release normally comes first. */
  hold_ms: z.number().int().min(50).default(10000),
  /** A host with no SA, window or expectation left forgets its public-address binding after this. */
  host_idle_s: z.number().positive().default(3600),
}).strict();

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
     * against the state directory (default /var/lib/sluice).
     */
    path: z.string().min(1).nullable().default('nat.journal'),
    /** Compact when the journal holds this many more lines than live records. */
    compact_slack: z.number().int().min(16).default(4096),
  }).strict().prefault({}),
}).strict();

export type NatConfig = z.infer<typeof natConfigSchema>;
export type NatConfigInput = z.input<typeof natConfigSchema>;
