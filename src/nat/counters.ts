/**
 * Every NAT counter: drop reasons and events. Registered once with services.reason() at init; the
 * stage also keeps its own copy for `stats` and tests. Order = the C enum.
 */
export const enum C {
  UNKNOWN = 0, UNKNOWN_IKE, AMBIGUOUS, COLLISION, KEEPALIVE_IN, SA_CAP, HOST_SA_CAP, SERVER_HOST_CAP,
  HOST_CAP, WINDOW_CAP, HOLD_CAP, FRAGMENT, RSPI_MISMATCH, BAD_SPI,
  WINDOW_OPENED, WINDOW_LEARNED, WINDOW_EXPIRED, HELD, RELEASED, HOLD_EXPIRED, LEARNED_EXPECTATION,
  EXPECTATION_EXPIRED, SA_CREATED, SA_IDLED, PINNED, KEEPALIVE_OUT, OUT, IN, STATIC_FORWARD, LOCAL,
}

export const COUNTER_DEFS: readonly (readonly [string, string])[] = [
  ['nat_unknown_spi', 'inbound ESP with an unknown SPI outside any learning window (no state created)'],
  ['nat_unknown_ike', 'inbound IKE with unknown SPIs outside any learning window and no static forward'],
  ['nat_ambiguous', 'unknown inbound SPI while two or more hosts hold unresolved expectations for the server'],
  ['nat_collision', 'a host chose an IKE SPI already mapped to another host for the same server'],
  ['nat_keepalive_in', 'inbound NAT keepalives (counted and dropped)'],
  ['nat_sa_cap', 'SA refused: limits.max_sas reached'],
  ['nat_host_sa_cap', 'SA refused: limits.max_sas_per_host reached'],
  ['nat_server_host_cap', 'SA refused: limits.max_hosts_per_server reached'],
  ['nat_host_cap', 'packet refused: limits.max_hosts reached'],
  ['nat_window_cap', 'SA-creating IKE message dropped: limits.max_windows reached'],
  ['nat_hold_cap', 'SA-creating IKE message dropped: held-packet cap reached'],
  ['nat_fragment', 'ESP/IKE fragment reached the queue (kernel defragmentation missing)'],
  ['nat_rspi_mismatch', 'inbound IKE whose responder SPI differs from the learned one'],
  ['nat_bad_spi', 'ESP with SPI 0 or IKE with initiator SPI 0'],
  ['nat_window_opened', 'learning windows opened'],
  ['nat_window_learned', 'learning windows closed by learning an SPI'],
  ['nat_window_expired', 'learning windows closed at window_max_ms without learning (expectation left)'],
  ['nat_held', 'SA-creating IKE messages held behind another host\'s window'],
  ['nat_released', 'held IKE messages released when a window closed'],
  ['nat_hold_expired', 'held IKE messages that timed out before release'],
  ['nat_learned_expectation', 'SPIs learned through a sole unresolved expectation'],
  ['nat_expectation_expired', 'unresolved expectations that idled out'],
  ['nat_sa_created', 'SA records created'],
  ['nat_sa_idled', 'SA records removed after their idle timeout'],
  ['nat_pinned', 'mappings pinned by an operator'],
  ['nat_keepalive_out', 'outbound NAT keepalives passed'],
  ['nat_out', 'outbound packets translated (source → public)'],
  ['nat_in', 'inbound packets translated (destination → host)'],
  ['nat_static_forward', 'inbound IKE SA creations forwarded by a static forward'],
  ['nat_local', 'unknown inbound left to the local IPsec stack (unknown_inbound: local)'],
];

/** A refused record id encodes the counter that says why: -1 - counter (so it is always < 0). */
export function refusal(c: C): number { return -1 - c; }
export function refused(id: number): C { return (-1 - id) as C; }
