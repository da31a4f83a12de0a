/**
 * Every NAT counter: drop reasons and events. Registered once with services.reason() at init; the
 * stage also keeps its own copy for `stats` and tests. Order = the C enum. docs/nat.md explains each.
 */
export const enum C {
  UNKNOWN = 0, UNKNOWN_IKE, AMBIGUOUS, COLLISION, KEEPALIVE_IN, SA_CAP, HOST_SA_CAP, SERVER_HOST_CAP,
  HOST_CAP, WINDOW_CAP, HOLD_CAP, FRAGMENT, RSPI_MISMATCH, BAD_SPI,
  WINDOW_OPENED, WINDOW_LEARNED, WINDOW_EXPIRED, HELD, RELEASED, HOLD_EXPIRED, LEARNED_ELIMINATION,
  DEBTS_CLEARED, SA_CREATED, SA_IDLED, PINNED, KEEPALIVE_OUT, OUT, IN, STATIC_FORWARD, LOCAL,
  WINDOW_SKIPPED, HOLD_REPLACED, HOLD_HOST_CAP, HOLD_PEER_CAP, DEBT_COUNTED, DEBT_OUTBOUND,
  PROBE_STARTED, PROBE_EXPIRED, LEARNED_REPLY, PROBE_HELD, PENDING_HELD, PENDING_RESOLVED, PENDING_EXPIRED,
  PENDING_CAP, LEARNED_OUTBOUND, PROBE_ANSWERED, HA_STANDBY,
}

export const COUNTER_DEFS: readonly (readonly [string, string])[] = [
  ['nat.unknown_spi', 'inbound ESP with an unknown SPI while no host of that (public, server) is owed one (no state created)'],
  ['nat.unknown_ike', 'inbound IKE with unknown SPIs while no host is owed an SA, and no static forward'],
  ['nat.ambiguous', 'inbound packet on an SPI that several hosts may own, dropped (pending hold expired or full)'],
  ['nat.collision', 'a host chose an IKE SPI already mapped to another host for the same server'],
  ['nat.keepalive_in', 'inbound NAT keepalives (counted and dropped)'],
  ['nat.sa_cap', 'SA refused: limits.max_sas reached'],
  ['nat.host_sa_cap', 'SA refused: limits.max_sas_per_host reached'],
  ['nat.server_host_cap', 'SA refused: limits.max_hosts_per_server reached'],
  ['nat.host_cap', 'packet refused: limits.max_hosts reached'],
  ['nat.window_cap', 'a window or probe not started: limits.max_windows or max_windows_per_host reached (learning then relies on elimination)'],
  ['nat.hold_cap', 'packet dropped instead of held: limits.max_held reached'],
  ['nat.fragment', 'ESP/IKE fragment reached the queue (kernel defragmentation missing)'],
  ['nat.rspi_mismatch', 'inbound IKE whose responder SPI differs from the learned one'],
  ['nat.bad_spi', 'ESP with SPI 0 or IKE with initiator SPI 0'],
  ['nat.window_opened', 'learning windows opened (an SA-creating exchange while its host was the only one owed an SA)'],
  ['nat.window_learned', 'SPIs learned in their host\'s window'],
  ['nat.window_expired', 'learning windows that ended without learning (the host stays owed; others go on)'],
  ['nat.held', 'packets held by the NAT (IKE behind a window, first ESP behind a probe, ambiguous inbound)'],
  ['nat.released', 'held packets released to run again'],
  ['nat.hold_expired', 'held packets that timed out and were dropped'],
  ['nat.learned_elimination', 'SPIs learned because only one host of that (public, server) was owed an SA'],
  ['nat.debts_cleared', 'hosts whose owed SAs ended with their last IKE SA to the server'],
  ['nat.sa_created', 'SA records created'],
  ['nat.sa_idled', 'SA records removed after their idle timeout'],
  ['nat.pinned', 'mappings pinned by an operator'],
  ['nat.keepalive_out', 'outbound NAT keepalives passed'],
  ['nat.out', 'outbound packets translated (source → public)'],
  ['nat.in', 'inbound packets translated (destination → host)'],
  ['nat.static_forward', 'inbound IKE SA creations forwarded by a static forward'],
  ['nat.local', 'unknown inbound left to the local IPsec stack (unknown_inbound: local)'],
  ['nat.window_skipped', 'SA-creating exchanges passed without a window (another host already owed an SA)'],
  ['nat.hold_replaced', 'IKE retransmissions that replaced their held copy instead of taking a slot'],
  ['nat.hold_host_cap', 'packet dropped instead of held: limits.max_held_per_host reached'],
  ['nat.hold_peer_cap', 'packet dropped instead of held: limits.max_held_per_server reached'],
  ['nat.debt_counted', 'SA-creating exchanges counted (each owes its host one inbound SA)'],
  ['nat.debt_outbound', 'owed SAs inferred from a new outbound SPI of a host not known to be owed one'],
  ['nat.probe_started', 'probes: a host\'s first packet on a new SA, awaiting the server\'s reply'],
  ['nat.probe_expired', 'probes that saw no new inbound SPI within probe_ms'],
  ['nat.learned_reply', 'SPIs learned as the reply to their host\'s probe'],
  ['nat.probe_held', 'ESP of hosts owed an SA held while another host\'s learning turn ran'],
  ['nat.pending_held', 'inbound packets held on an ambiguous SPI'],
  ['nat.pending_resolved', 'ambiguous SPIs resolved (by elimination, a reply or the host speaking first)'],
  ['nat.pending_expired', 'ambiguous SPIs forgotten after pending_idle_s without a packet'],
  ['nat.pending_cap', 'ambiguous SPIs not tracked: limits.max_pending reached'],
  ['nat.learned_outbound', 'IKE SAs first seen from their host (rekeyed inside encrypted payload), owed SA settled'],
  ['nat.probe_answered', 'probes answered on an SPI already known: that SA\'s two directions confirmed, it never waits again'],
  ['nat.ha_standby', 'NAT packets dropped because this gateway is an HA standby (the active owns the traffic; docs/ha.md)'],
];

/** A refused record id encodes the counter that says why: -1 - counter (so it is always < 0). */
export function refusal(c: C): number { return -1 - c; }
export function refused(id: number): C { return (-1 - id) as C; }
