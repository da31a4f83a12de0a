# Shared by the namespace pps benchmarks (run.sh, nat-pps.sh, steer-pps.sh); source it.
#
#   bench_lab TAG GEN/LEN RT_LAN/LEN RT_WAN/LEN SNK/LEN
# builds gen ns (eth0) ─ a0 [rt ns] b0 ─ eth0 snk ns with those addresses, forwarding on, and a
# permanent neighbour entry for the sink (no ARP during a run); sets G R S TMP and an EXIT trap that
# ends every process we started (PIDS; GENS are generators in their own process group, started
# with setsid) and deletes the namespaces.
bench_lab() {
  local tag=$1 gen=$2 rtlan=$3 rtwan=$4 snk=$5 id=$$$RANDOM
  G=sl-$tag-gen-$id R=sl-$tag-rt-$id S=sl-$tag-snk-$id
  TMP=$(mktemp -d "/tmp/sluice-$tag-XXXX")
  PIDS=() GENS=()
  trap bench_cleanup EXIT
  for n in "$G" "$R" "$S"; do ip netns add "$n"; ip -n "$n" link set lo up; done
  ip -n "$G" link add eth0 type veth peer name a0 netns "$R"
  ip -n "$S" link add eth0 type veth peer name b0 netns "$R"
  ip -n "$G" addr add "$gen" dev eth0; ip -n "$G" link set eth0 up
  ip -n "$S" addr add "$snk" dev eth0; ip -n "$S" link set eth0 up
  ip -n "$R" addr add "$rtlan" dev a0; ip -n "$R" link set a0 up
  ip -n "$R" addr add "$rtwan" dev b0; ip -n "$R" link set b0 up
  ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0
  ip -n "$R" neigh replace "${snk%/*}" lladdr "$(mac "$S" eth0)" dev b0 nud permanent
}

bench_cleanup() {
  local p n
  for p in "${GENS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${GENS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  for n in "$G" "$R" "$S"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$TMP"
}

# trafgen in its own process group, pinned to core 0 (a background job of a script ignores SIGINT,
# so it is ended by group with TERM, then KILL: see gen_stop). Sets gpid.
gen_start() {
  setsid ip netns exec "$G" taskset -c 0 trafgen --dev eth0 --conf "$1" --cpus 1 --no-sock-mem -q >/dev/null 2>&1 &
  gpid=$!; GENS+=("$gpid")
}
gen_stop() {
  kill -TERM -- "-$gpid" 2>/dev/null || true; sleep 0.2; kill -KILL -- "-$gpid" 2>/dev/null || true
  wait "$gpid" 2>/dev/null || true
}

mac() { ip -n "$1" -br link show "$2" | awk '{print $3}'; }
hexmac() { echo "$1" | sed 's/^/0x/; s/:/, 0x/g'; }
counter() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }
cputicks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
HZ=$(getconf CLK_TCK)
# CPU other sessions use while we run nothing (of 200% on 2 cores): a disturbed run shows up here.
background() {
  local b0 t0 b1 t1
  read -r b0 t0 < <(busy); sleep 2; read -r b1 t1 < <(busy)
  awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.0f", (t > 0 ? 200 * b / t : 0) }'
}
