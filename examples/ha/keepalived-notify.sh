#!/bin/sh
# keepalived notify script for a sluice gateway pair (docs/ha.md). keepalived calls it as
#   keepalived-notify.sh INSTANCE|GROUP NAME MASTER|BACKUP|FAULT|STOP [PRIORITY]
# MASTER promotes this gateway's sluice to active; every other state demotes it to standby (a
# standby drops the NAT's packets and only applies the active's replication stream). Both commands
# are idempotent, so repeated or reordered notifications are harmless.
#
# Environment (set it in the wrapper keepalived calls, or edit the defaults):
#   SLUICE         the sluice command (default: sluice)
#   SLUICE_SOCKET  control socket (default: the sluice default, /run/sluice/sluice.sock)
#   SLUICE_HA_LOG  file to append one line per transition to (default: none; syslog via logger if present)
set -u
state="${3:-}"
sluice="${SLUICE:-sluice}"
sock="${SLUICE_SOCKET:+-s $SLUICE_SOCKET}"
case "$state" in
  MASTER) op=promote ;;
  BACKUP|FAULT|STOP) op=demote ;;
  *) echo "keepalived-notify: unknown state '$state'" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086 # $sluice may be "node /path/main.js"; $sock is empty or two words
out=$($sluice ha $op $sock 2>&1); rc=$?
line="$(date +%s.%N) $state -> sluice ha $op: rc=$rc $(printf '%s' "$out" | head -n 1)"
if [ -n "${SLUICE_HA_LOG:-}" ]; then printf '%s\n' "$line" >> "$SLUICE_HA_LOG"
elif command -v logger >/dev/null 2>&1; then logger -t sluice-ha "$line"; fi
exit $rc
