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

source "$ROOT/bench/lib.sh"
bench_lab spps 10.1.0.2/24 10.1.0.1/24 10.2.0.1/24 10.2.0.2/24
ip netns exec "$R" iptables -A FORWARD -i a0 -p udp -j NFQUEUE --queue-num $Q
ip netns exec "$S" iptables -t raw -A PREROUTING -p udp -j DROP
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

RESULTS="$TMP/results"
printf '%-12s %5s %12s %12s %8s %8s %9s\n' config round delivered_pps offered_pps cpu_% busy_% us/packet
for round in $(seq 1 "$ROUNDS"); do
  for c in $CONFIGS; do
    ip netns exec "$R" taskset -c 1 node "$ROOT/dist/src/cli/main.js" run -c "$TMP/$c.yaml" >"$TMP/$c.out" 2>&1 &
    cpid=$!; PIDS+=("$cpid")
    # A large rule set compiles for a while at start (10,000 rules: seconds on a busy machine):
    # wait for the control socket (the engine runs once it exists), up to 2 minutes.
    for _ in $(seq 1200); do [ -S "$TMP/sluice.sock" ] && break; sleep 0.1; done
    [ -S "$TMP/sluice.sock" ] || { echo "sluice ($c) did not start: $(tail -3 "$TMP/$c.out")" >&2; exit 1; }
    gen_start "$TMP/udp.cfg"
    sleep "$WARM"
    d0=$(counter "$S" eth0 rx_packets); o0=$(counter "$G" eth0 tx_packets); c0=$(cputicks "$cpid"); read -r b0 t0 < <(busy)
    sleep "$DUR"
    d1=$(counter "$S" eth0 rx_packets); o1=$(counter "$G" eth0 tx_packets); c1=$(cputicks "$cpid"); read -r b1 t1 < <(busy)
    gen_stop
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
