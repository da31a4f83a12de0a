/**
 * Every DHCP counter (drop reasons and events), registered once with services.reason() at init; the
 * stage keeps its own copy for `stats` and tests. Order = the C enum.
 */
export const enum C {
  MALFORMED = 0, INFORM_ANSWERED, INFORM_NO_SCOPE, INFORM_NO_DESTINATION, INFORM_NO_SERVER_ID,
  INFORM_RATE_LIMITED, INFORM_SEND_FAILED, PASSED,
  RELAY_FORWARDED, RELAY_HOP_LIMIT, RELAY_UNTRUSTED_82, RELAY_HAS_82, RELAY_NO_GIADDR, RELAY_NO_ROUTE,
  RELAY_SEND_FAILED, RELAY_REPLIED, RELAY_REPLY_UNKNOWN, RELAY_82_TOO_BIG,
  RELAY_REPLY_NOT_SERVER, RELAY_REPLY_BAD_GIADDR, RELAY_REPLY_BAD_82,
}

export const COUNTER_DEFS: readonly (readonly [string, string])[] = [
  ['dhcp.malformed', 'DHCP (UDP port 67) on a configured interface that cannot be read: dropped'],
  ['dhcp.inform.answered', 'DHCPINFORMs answered with a DHCPACK'],
  ['dhcp.inform.no_scope', 'DHCPINFORMs no scope matched (passed on untouched)'],
  ['dhcp.inform.no_destination', 'DHCPINFORMs with ciaddr 0, IP source 0 and no giaddr: nowhere to answer (dropped)'],
  ['dhcp.inform.no_server_id', 'DHCPINFORMs on an interface without an address and no scope server_id (dropped)'],
  ['dhcp.inform.rate_limited', 'DHCPINFORMs over the per-client or total rate (dropped)'],
  ['dhcp.inform.send_failed', 'DHCPACKs the kernel refused to send'],
  ['dhcp.passed', 'other DHCP messages on configured interfaces, accepted untouched'],
  ['dhcp.relay.forwarded', 'client requests relayed (once per server)'],
  ['dhcp.relay.hop_limit', 'requests at relay.max_hops (RFC 1542 4.1.1; dropped)'],
  ['dhcp.relay.untrusted_82', 'requests with option 82 and giaddr 0 on an untrusted interface (RFC 3046 2.1; dropped)'],
  ['dhcp.relay.has_82', 'requests already carrying option 82 under policy discard (dropped)'],
  ['dhcp.relay.no_giaddr', 'requests on an interface without an address and no configured giaddr (dropped)'],
  ['dhcp.relay.no_route', 'relay server with no interface to reach it (not sent)'],
  ['dhcp.relay.send_failed', 'relayed requests or replies the kernel refused to send'],
  ['dhcp.relay.replied', 'server replies relayed to a client'],
  ['dhcp.relay.reply_unknown', 'server replies for no request we relayed: no client interface found (dropped)'],
  ['dhcp.relay.82_too_big', 'requests relayed without our option 82 because it would not fit'],
  ['dhcp.relay.reply_not_server', 'BOOTREPLYs not from a configured relay server, or not on the interface that reaches it (dropped)'],
  ['dhcp.relay.reply_bad_giaddr', "server replies whose giaddr is not the client interface's relay address (dropped)"],
  ['dhcp.relay.reply_bad_82', 'server replies without the option 82 we added (circuit-id, remote-id) for that client (dropped)'],
];
