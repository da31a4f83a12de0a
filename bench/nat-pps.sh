#!/usr/bin/env bash
# End-to-end raw ESP packets per second through sluice with the SPI-keyed NAT on, as a ratio to
# sluice accept-all in the same run (target >= 0.9). Both modes use the same kernel rules (the NAT
# config's `sluice rules --iptables`: raw CT --notrack, mangle POSTROUTING NFQUEUE, FORWARD accept),
# so the difference is the NAT stage (lookup + source rewrite + IPv4 checksum) and the verdict
# carrying the rewritten packet.
#
#   gen ns: trafgen, 64-byte ESP frames 192.168.1.11 -> 203.0.113.10 (SPI 0x1001), core 0
#     │ veth
#   rt ns:  sluice on queue 7 (mangle POSTROUTING), pinned to core 1
#     │ veth
#   snk ns: counts rx_packets; raw PREROUTING counts ESP whose source is the public address
#           (203.0.113.1: translated) and drops all ESP (no ICMP back)
#
#   bash bench/nat-pps.sh                  (after npm run build)
#   DUR=3 ROUNDS=2 bash bench/nat-pps.sh   (short run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-3}
WARM=${WARM:-1}
Q=7

[ "$(id -u)" = 0 ] || { echo "bench/nat-pps.sh needs root (namespaces, iptables, NFQUEUE)" >&2; exit 1; }
[ -f build/Release/sluice_native.node ] && [ -f dist/src/cli/main.js ] || { echo "run npm run build first" >&2; exit 1; }

source "$ROOT/bench/lib.sh"
bench_lab natb 192.168.1.11/24 192.168.1.1/24 203.0.113.1/24 203.0.113.10/24
ip netns exec "$S" iptables -t raw -A PREROUTING -s 203.0.113.1 -p esp -j DROP
ip netns exec "$S" iptables -t raw -A PREROUTING -p esp -j DROP

for mode in nat accept; do
  {
    echo "queues:"
    echo "  - { num: $Q, fail_open: false, max_len: 4096, rcvbuf: 8388608, batch: 64 }"
    if [ $mode = nat ]; then
      echo "nat: { public: [203.0.113.1], wan_interface: b0, lan_interfaces: [a0], servers: [203.0.113.10], queue: $Q, journal: { path: null } }"
    fi
    echo "control: { socket: $TMP/sluice.sock }"
    echo "log: { level: warn }"
  } > "$TMP/$mode.yaml"
done
# Same kernel rules for both modes: the NAT config's.
node dist/src/cli/main.js rules --iptables -c "$TMP/nat.yaml" | ip netns exec "$R" iptables-restore --noflush

# 64-byte frame: Ethernet 14 + IPv4 20 (proto 50) + ESP SPI 4 + sequence 4 + 22 bytes of "ciphertext".
cat > "$TMP/esp.cfg" <<EOF
{
  $(hexmac "$(mac "$R" a0)"), $(hexmac "$(mac "$G" eth0)"), c16(0x0800),
  0x45, 0x00, c16(50), c16(1), c16(0x4000), 64, 50, csumip(14, 33),
  192, 168, 1, 11,  203, 0, 113, 10,
  c32(0x1001), c32(1),
  fill(0x41, 22)
}
EOF

translated() { ip netns exec "$S" iptables -t raw -L PREROUTING -vnx | awk '$8=="203.0.113.1" {n=$1} END {print n+0}'; }
# ESP that reached the sink with any other source: untranslated (a leak), must stay 0 with NAT on.
untranslated() { ip netns exec "$S" iptables -t raw -L PREROUTING -vnx | awk '$8=="0.0.0.0/0" && $4=="50" {n=$1} END {print n+0}'; }
# queue_dropped + user_dropped (0 when the queue is not bound)
qstat() { ip netns exec "$R" awk -v q=$Q '$1==q {n=$6+$7} END {print n+0}' /proc/net/netfilter/nfnetlink_queue; }
echo "background CPU (other sessions) before: $(background)% of 200%"
printf '%-7s %5s %12s %12s %9s %8s %8s %8s %12s %12s\n' mode round delivered_pps offered_pps loss_% cpu_% busy_% us/pkt translated_% untranslated
RESULTS="$TMP/results"
for round in $(seq 1 "$ROUNDS"); do
  for mode in nat accept; do
    rm -f "$TMP/sluice.sock"
    ip netns exec "$R" taskset -c 1 node "$ROOT/dist/src/cli/main.js" run -c "$TMP/$mode.yaml" >"$TMP/$mode.out" 2>&1 &
    cpid=$!; PIDS+=("$cpid")
    for _ in $(seq 100); do [ -S "$TMP/sluice.sock" ] && break; sleep 0.1; done
    gen_start "$TMP/esp.cfg"
    sleep "$WARM"
    d0=$(counter "$S" eth0 rx_packets); o0=$(counter "$G" eth0 tx_packets); x0=$(translated); u0=$(untranslated); q0=$(qstat)
    c0=$(cputicks "$cpid"); read -r b0 t0 < <(busy)
    sleep "$DUR"
    d1=$(counter "$S" eth0 rx_packets); o1=$(counter "$G" eth0 tx_packets); x1=$(translated); u1=$(untranslated); q1=$(qstat)
    c1=$(cputicks "$cpid"); read -r b1 t1 < <(busy)
    gen_stop
    kill "$cpid"; wait "$cpid" 2>/dev/null || true
    awk -v m="$mode" -v r="$round" -v dur="$DUR" -v d=$((d1 - d0)) -v o=$((o1 - o0)) -v x=$((x1 - x0)) -v u=$((u1 - u0)) -v ql=$((q1 - q0)) \
        -v cpu=$((c1 - c0)) -v hz="$HZ" -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN {
      printf "%-7s %5d %12.0f %12.0f %9.1f %8.0f %8.0f %8.2f %12.1f %12d\n", m, r, d / dur, o / dur, (o > 0 ? 100 * ql / o : 0),
        100 * cpu / hz / dur, (t > 0 ? 200 * b / t : 0), (d > 0 ? 1e6 * cpu / hz / d : 0), (d > 0 ? 100 * x / d : 0), u
    }' | tee -a "$RESULTS"
  done
done
echo "background CPU (other sessions) after: $(background)% of 200%"
echo
awk '{v[$1 " " $2] = $3; r[$2] = 1} END {
  for (k in r) if (v["accept " k] > 0) printf "round %s: nat / accept-all = %.3f\n", k, v["nat " k] / v["accept " k]
}' "$RESULTS" | sort | tee "$TMP/ratios"
awk '{print $NF}' "$TMP/ratios" | sort -n | awk '{a[NR]=$1} END { if (NR > 0) printf "median nat / accept-all = %.3f over %d rounds (target >= 0.9)\n", a[int((NR + 1) / 2)], NR }'
