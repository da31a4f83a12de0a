#!/usr/bin/env bash
# End-to-end raw ESP packets per second through sluice's NAT with `workers: 2` (queues 7 and 8,
# --queue-balance 7:8) against `workers: 1` (queue 7) in the same run, paired round by round, with
# the CPU each sluice thread spent per delivered packet. Both modes use the kernel rules their own
# config's `sluice rules --iptables` gives.
#
#   gen ns: trafgen, 64-byte ESP frames from 64 LAN hosts 192.168.1.11-74 (SPI 0x1000 + host), each
#           to its own server 203.0.113.10-73 (one host per server: the NAT's learning never makes
#           one host's unanswered SA wait behind another's), pinned to core 0 (on this 2-core
#           machine the generator is the limit)
#     │ veth
#   rt ns:  sluice, NAT of the 64 hosts (their outbound ESP spreads over the two queues by the
#           kernel's address hash); workers: 1 pinned to core 1, workers: 2 on both cores
#     │ veth
#   snk ns: receives for all 64 servers (static neighbour entries on the router), counts ESP whose
#           source is the public address 203.0.113.1 (translated), drops all ESP
#
#   bash bench/workers-pps.sh                  (after npm run build)
#   DUR=3 ROUNDS=2 bash bench/workers-pps.sh   (short run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-3}
WARM=${WARM:-1}
Q=7

[ "$(id -u)" = 0 ] || { echo "bench/workers-pps.sh needs root (namespaces, iptables, NFQUEUE)" >&2; exit 1; }
[ -f build/Release/sluice_native.node ] && [ -f dist/src/cli/main.js ] || { echo "run npm run build first" >&2; exit 1; }

source "$ROOT/bench/lib.sh"
bench_lab wkb 192.168.1.11/24 192.168.1.1/24 203.0.113.1/24 203.0.113.10/24
ip netns exec "$S" iptables -t raw -A PREROUTING -s 203.0.113.1 -p esp -j DROP
ip netns exec "$S" iptables -t raw -A PREROUTING -p esp -j DROP
SNKMAC=$(mac "$S" eth0)
for k in $(seq 11 73); do ip -n "$R" neigh replace "203.0.113.$k" lladdr "$SNKMAC" dev b0 nud permanent; done

for w in 1 2; do
  {
    echo "workers: $w"
    echo "queues:"
    echo "  - { num: $Q, fail_open: false, max_len: 4096, rcvbuf: 8388608, batch: 64 }"
    echo "nat: { public: [203.0.113.1], wan_interface: b0, lan_interfaces: [a0], servers: [203.0.113.0/24], queue: $Q, journal: { path: null } }"
    echo "control: { socket: $TMP/sluice.sock }"
    echo "log: { level: warn }"
  } > "$TMP/w$w.yaml"
  node dist/src/cli/main.js rules --iptables -c "$TMP/w$w.yaml" > "$TMP/w$w.rules"
done
grep -q -- '--queue-balance 7:8' "$TMP/w2.rules" || { echo "workers: 2 rules lack --queue-balance 7:8" >&2; exit 1; }

# 64-byte frame: Ethernet 14 + IPv4 20 (proto 50) + ESP SPI 4 + sequence 4 + 22 bytes. The source's
# last byte and the SPI's last byte step together over 64 hosts (trafgen recomputes csumip per packet).
cat > "$TMP/esp.cfg" <<EOF
{
  $(hexmac "$(mac "$R" a0)"), $(hexmac "$(mac "$G" eth0)"), c16(0x0800),
  0x45, 0x00, c16(50), c16(1), c16(0x4000), 64, 50, csumip(14, 33),
  192, 168, 1, dinc(11, 74),  203, 0, 113, dinc(10, 73),
  0x00, 0x00, 0x10, dinc(11, 74), c32(1),
  fill(0x41, 22)
}
EOF

translated() { ip netns exec "$S" iptables -t raw -L PREROUTING -vnx | awk '$8=="203.0.113.1" {n=$1} END {print n+0}'; }
untranslated() { ip netns exec "$S" iptables -t raw -L PREROUTING -vnx | awk '$8=="0.0.0.0/0" && $4=="50" {n=$1} END {print n+0}'; }
# Per thread of a process: "tid ticks" (utime + stime).
threads() { for t in /proc/"$1"/task/*; do awk -v t="${t##*/}" '{print t, $14+$15}' "$t/stat" 2>/dev/null; done; }
echo "background CPU (other sessions) before: $(background)% of 200%"
printf '%-4s %5s %12s %12s %8s %13s  %s\n' mode round delivered_pps offered_pps cpu_% translated_% 'busy threads: tid cpu_% us/pkt'
RESULTS="$TMP/results"
for round in $(seq 1 "$ROUNDS"); do
  for w in 1 2; do
    ip netns exec "$R" iptables -t mangle -F; ip netns exec "$R" iptables -t raw -F; ip netns exec "$R" iptables -F FORWARD
    ip netns exec "$R" iptables-restore --noflush < "$TMP/w$w.rules"
    rm -f "$TMP/sluice.sock"
    pin=1; [ "$w" = 2 ] && pin=0-1
    ip netns exec "$R" taskset -c "$pin" node "$ROOT/dist/src/cli/main.js" run -c "$TMP/w$w.yaml" >"$TMP/w$w.out" 2>&1 &
    cpid=$!; PIDS+=("$cpid")
    for _ in $(seq 100); do [ -S "$TMP/sluice.sock" ] && break; sleep 0.1; done
    # Each host's inbound SA pinned (as if learned): its outbound SA pairs with it and never waits
    # on learning, as on a gateway whose tunnels are up (one-way test traffic draws no answers).
    for k in $(seq 0 63); do
      node "$ROOT/dist/src/cli/main.js" sa pin -s "$TMP/sluice.sock" --host "192.168.1.$((11 + k))" --server "203.0.113.$((10 + k))" --spi "$((0x2000 + k))" >/dev/null
    done
    gen_start "$TMP/esp.cfg"
    sleep "$WARM"
    d0=$(counter "$S" eth0 rx_packets); o0=$(counter "$G" eth0 tx_packets); x0=$(translated); c0=$(cputicks "$cpid"); threads "$cpid" > "$TMP/t0"
    sleep "$DUR"
    d1=$(counter "$S" eth0 rx_packets); o1=$(counter "$G" eth0 tx_packets); x1=$(translated); c1=$(cputicks "$cpid"); threads "$cpid" > "$TMP/t1"
    gen_stop
    kill "$cpid"; wait "$cpid" 2>/dev/null || true
    # Threads that used more than 2% of a core: the main thread and, with workers: 2, each worker.
    per=$(awk -v hz="$HZ" -v dur="$DUR" -v d=$((d1 - d0)) 'NR==FNR {a[$1]=$2; next} ($1 in a) {
        c = $2 - a[$1]; if (100 * c / hz / dur > 2) printf "%s %.0f%% %.2f; ", $1, 100 * c / hz / dur, (d > 0 ? 1e6 * c / hz / d : 0) }' "$TMP/t0" "$TMP/t1")
    awk -v m="w$w" -v r="$round" -v dur="$DUR" -v d=$((d1 - d0)) -v o=$((o1 - o0)) -v x=$((x1 - x0)) -v cpu=$((c1 - c0)) -v hz="$HZ" -v per="$per" 'BEGIN {
      printf "%-4s %5d %12.0f %12.0f %8.0f %13.1f  %s\n", m, r, d / dur, o / dur, 100 * cpu / hz / dur, (d > 0 ? 100 * x / d : 0), per
    }' | tee -a "$RESULTS"
    [ "$w" = 2 ] && { grep -o 'worker[^,]*' "$TMP/w2.out" | head -3 || true; }
  done
done
echo "background CPU (other sessions) after: $(background)% of 200%"
echo
awk '{v[$1 " " $2] = $3; r[$2] = 1} END {
  for (k in r) if (v["w1 " k] > 0) printf "round %s: workers:2 / workers:1 = %.3f\n", k, v["w2 " k] / v["w1 " k]
}' "$RESULTS" | sort | tee "$TMP/ratios"
awk '{print $NF}' "$TMP/ratios" | sort -n | awk '{a[NR]=$1} END { if (NR > 0) printf "median workers:2 / workers:1 = %.3f over %d rounds (delivered pps; the generator on core 0 is the limit)\n", a[int((NR + 1) / 2)], NR }'
