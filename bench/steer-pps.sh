#!/usr/bin/env bash
# End-to-end pps with steering on, as a ratio to accept-all in the same run (issue 6's benchmark).
# Same topology and measurement as bench/run.sh (which see): trafgen 64-byte UDP (core 0) → router ns
# FORWARD → NFQUEUE → `sluice run` (core 1) → sink. Two configs, interleaved round by round:
#   accept-all   queue only, no stage
#   steer-N      N steer rules (bench/pps/steer-config.ts); only the last matches the flow, which is
#                marked and accepted: the whole prefilter plus the rule tests run for every packet.
#   bash bench/steer-pps.sh              (after npm run build / npx tsc -p .)
#   DUR=5 ROUNDS=3 RULES=100 bash bench/steer-pps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DUR=${DUR:-5} ROUNDS=${ROUNDS:-3} WARM=${WARM:-1} RULES=${RULES:-100}
RCVBUF=$((8 << 20)) MAXLEN=4096 BATCH=64 Q=7
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
[ -f build/Release/sluice_native.node ] && [ -f dist/bench/pps/steer-config.js ] || { echo "build first" >&2; exit 1; }

id=$$$RANDOM
G=sl-spps-gen-$id R=sl-spps-rt-$id S=sl-spps-snk-$id
TMP=$(mktemp -d /tmp/sluice-spps-XXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for n in "$G" "$R" "$S"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
for n in "$G" "$R" "$S"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n "$G" link add eth0 type veth peer name a0 netns "$R"
ip -n "$S" link add eth0 type veth peer name b0 netns "$R"
ip -n "$G" addr add 10.1.0.2/24 dev eth0; ip -n "$G" link set eth0 up
ip -n "$S" addr add 10.2.0.2/24 dev eth0; ip -n "$S" link set eth0 up
ip -n "$R" addr add 10.1.0.1/24 dev a0; ip -n "$R" link set a0 up
ip -n "$R" addr add 10.2.0.1/24 dev b0; ip -n "$R" link set b0 up
ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
mac() { ip -n "$1" -br link show "$2" | awk '{print $3}'; }
ip -n "$R" neigh replace 10.2.0.2 lladdr "$(mac "$S" eth0)" dev b0 nud permanent
ip netns exec "$R" iptables -A FORWARD -i a0 -p udp -j NFQUEUE --queue-num $Q
ip netns exec "$S" iptables -t raw -A PREROUTING -p udp -j DROP
hexmac() { echo "$1" | sed 's/^/0x/; s/:/, 0x/g'; }
cat > "$TMP/udp.cfg" <<EOT
{
  $(hexmac "$(mac "$R" a0)"), $(hexmac "$(mac "$G" eth0)"), c16(0x0800),
  0x45, 0x00, c16(50), c16(1), c16(0x4000), 64, 17, csumip(14, 33),
  10, 1, 0, 2,  10, 2, 0, 2,
  c16(40000), c16(9), c16(30), c16(0),
  fill(0x41, 22)
}
EOT
node dist/bench/pps/steer-config.js 0 $Q $RCVBUF $BATCH $MAXLEN "$TMP/sluice.sock" | sed '/^steer:/,$d' > "$TMP/accept-all.yaml"
node dist/bench/pps/steer-config.js "$RULES" $Q $RCVBUF $BATCH $MAXLEN "$TMP/sluice.sock" > "$TMP/steer-$RULES.yaml"
CONFIGS="accept-all steer-$RULES"

counter() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }
cputicks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
HZ=$(getconf CLK_TCK)
RESULTS="$TMP/results"
printf '%-12s %5s %12s %12s %8s %8s %9s\n' config round delivered_pps offered_pps cpu_% busy_% us/packet
for round in $(seq 1 "$ROUNDS"); do
  for c in $CONFIGS; do
    ip netns exec "$R" taskset -c 1 node "$ROOT/dist/src/cli/main.js" run -c "$TMP/$c.yaml" >"$TMP/$c.out" 2>&1 &
    cpid=$!; PIDS+=("$cpid")
    for _ in $(seq 100); do [ -S "$TMP/sluice.sock" ] && break; sleep 0.1; done
    ip netns exec "$G" timeout -s INT $((WARM + DUR + 5)) taskset -c 0 trafgen --dev eth0 --conf "$TMP/udp.cfg" --cpus 1 --no-sock-mem -q >/dev/null 2>&1 &
    gpid=$!; PIDS+=("$gpid")
    sleep "$WARM"
    d0=$(counter "$S" eth0 rx_packets); o0=$(counter "$G" eth0 tx_packets); c0=$(cputicks "$cpid"); read -r b0 t0 < <(busy)
    sleep "$DUR"
    d1=$(counter "$S" eth0 rx_packets); o1=$(counter "$G" eth0 tx_packets); c1=$(cputicks "$cpid"); read -r b1 t1 < <(busy)
    kill "$gpid"; wait "$gpid" 2>/dev/null || true
    kill "$cpid"; wait "$cpid" 2>/dev/null || true
    rm -f "$TMP/sluice.sock"
    awk -v c="$c" -v r="$round" -v dur="$DUR" -v d=$((d1 - d0)) -v o=$((o1 - o0)) -v cpu=$((c1 - c0)) -v hz="$HZ" -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN {
      printf "%-12s %5d %12.0f %12.0f %8.0f %8.0f %9.2f\n", c, r, d / dur, o / dur, 100 * cpu / hz / dur, (t > 0 ? 200 * b / t : 0), (d > 0 ? 1e6 * cpu / hz / d : 0)
    }' | tee -a "$RESULTS"
  done
done
echo
echo "per round: steer-$RULES / accept-all (delivered pps; CPU us per packet)"
awk -v s="steer-$RULES" '$1=="accept-all" {a[$2]=$3; au[$2]=$7} $1==s {b[$2]=$3; bu[$2]=$7}
  END { for (r in a) if (a[r] > 0 && au[r] > 0) printf "round %d: pps ratio %.2f, us/packet ratio %.2f\n", r, b[r] / a[r], bu[r] / au[r] }' "$RESULTS"
