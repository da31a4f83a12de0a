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
  ['nat.unknown_spi', 'inbound ESP with an unknown SPI outside any learning window (no state created)'],
  ['nat.unknown_ike', 'inbound IKE with unknown SPIs outside any learning window and no static forward'],
  ['nat.ambiguous', 'unknown inbound SPI while two or more hosts hold unresolved expectations for the server'],
  ['nat.collision', 'a host chose an IKE SPI already mapped to another host for the same server'],
  ['nat.keepalive_in', 'inbound NAT keepalives (counted and dropped)'],
  ['nat.sa_cap', 'SA refused: limits.max_sas reached'],
  ['nat.host_sa_cap', 'SA refused: limits.max_sas_per_host reached'],
  ['nat.server_host_cap', 'SA refused: limits.max_hosts_per_server reached'],
  ['nat.host_cap', 'packet refused: limits.max_hosts reached'],
  ['nat.window_cap', 'SA-creating IKE message dropped: limits.max_windows reached'],
  ['nat.hold_cap', 'SA-creating IKE message dropped: held-packet cap reached'],
  ['nat.fragment', 'ESP/IKE fragment reached the queue (kernel defragmentation missing)'],
  ['nat.rspi_mismatch', 'inbound IKE whose responder SPI differs from the learned one'],
  ['nat.bad_spi', 'ESP with SPI 0 or IKE with initiator SPI 0'],
  ['nat.window_opened', 'learning windows opened'],
  ['nat.window_learned', 'learning windows closed by learning an SPI'],
  ['nat.window_expired', 'learning windows closed at window_max_ms without learning (expectation left)'],
  ['nat.held', 'SA-creating IKE messages held behind another host\'s window'],
  ['nat.released', 'held IKE messages released when a window closed'],
  ['nat.hold_expired', 'held IKE messages that timed out before release'],
  ['nat.learned_expectation', 'SPIs learned through a sole unresolved expectation'],
  ['nat.expectation_expired', 'unresolved expectations that idled out'],
  ['nat.sa_created', 'SA records created'],
  ['nat.sa_idled', 'SA records removed after their idle timeout'],
  ['nat.pinned', 'mappings pinned by an operator'],
  ['nat.keepalive_out', 'outbound NAT keepalives passed'],
  ['nat.out', 'outbound packets translated (source → public)'],
  ['nat.in', 'inbound packets translated (destination → host)'],
  ['nat.static_forward', 'inbound IKE SA creations forwarded by a static forward'],
  ['nat.local', 'unknown inbound left to the local IPsec stack (unknown_inbound: local)'],
];

/** A refused record id encodes the counter that says why: -1 - counter (so it is always < 0). */
export function refusal(c: C): number { return -1 - c; }
export function refused(id: number): C { return (-1 - id) as C; }
