#!/usr/bin/env bash
# Captures a real strongSwan 5.9 IKEv2 exchange (IKE_SA_INIT on UDP 500, IKE_AUTH and ESP-in-UDP on
# 4500, NAT-keepalives) between two namespaces joined by a veth, with kernel-libipsec (the lab kernel
# has no ESP). Output: ike-esp-natt.pcap (LINKTYPE_ETHERNET). Needs root. Usage: make-ipsec.sh OUTDIR
set -euo pipefail
out=$(realpath "${1:-.}")
tag="pk$$$RANDOM"
A="${tag}a"; B="${tag}b"
dir=$(mktemp -d)
CHARON=/usr/lib/ipsec/charon; [ -x $CHARON ] || CHARON=/usr/sbin/charon-systemd
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip link add "v${tag}" netns "$A" type veth peer name "w${tag}" netns "$B"
ip -n "$A" link set lo up; ip -n "$B" link set lo up
ip -n "$A" link set "v${tag}" name eth0; ip -n "$B" link set "w${tag}" name eth0
ip -n "$A" addr add 192.0.2.1/24 dev eth0; ip -n "$B" addr add 192.0.2.2/24 dev eth0
ip -n "$A" link set eth0 up; ip -n "$B" link set eth0 up

for n in a b; do
  mkdir -p "$dir/$n/run" "$dir/$n/conf"
  cat > "$dir/$n/strongswan.conf" <<CONF
charon {
  load_modular = no
  load = random nonce openssl gmp pem pkcs1 x509 pubkey sha1 sha2 hmac aes kdf kernel-libipsec kernel-netlink socket-default vici updown
  install_routes = yes
  routing_table = 220
  keep_alive = 2s
  filelog { log { path = $dir/$n/charon.log
    default = 1
    ike = 2 } }
  plugins { vici { socket = unix://$dir/$n/charon.vici } }
}
CONF
done
# a = initiator (client), b = responder (server)
cat > "$dir/a/swanctl.conf" <<CONF
connections { c { version = 2
  local_addrs = 192.0.2.1
  remote_addrs = 192.0.2.2
  proposals = aes128-sha256-modp2048
  local { auth = psk
    id = client@example.org }
  remote { auth = psk
    id = server@example.org }
  children { c { local_ts = 10.1.0.1/32
    remote_ts = 10.2.0.0/24
    esp_proposals = aes128-sha256 } } } }
secrets { ike { secret = lab-only-psk } }
CONF
cat > "$dir/b/swanctl.conf" <<CONF
connections { s { version = 2
  local_addrs = 192.0.2.2
  proposals = aes128-sha256-modp2048
  local { auth = psk
    id = server@example.org }
  remote { auth = psk
    id = client@example.org }
  children { s { local_ts = 10.2.0.0/24
    remote_ts = 10.1.0.1/32
    esp_proposals = aes128-sha256 } } } }
secrets { ike { secret = lab-only-psk } }
CONF
ip -n "$A" addr add 10.1.0.1/32 dev lo
ip -n "$B" addr add 10.2.0.1/24 dev lo

ip netns exec "$B" tcpdump -i eth0 -U --immediate-mode -w "$dir/cap.pcap" -s 0 'udp port 500 or udp port 4500' 2>"$dir/tcpdump.err" &
pids+=($!)
for n in a b; do
  ns=$A; [ $n = b ] && ns=$B
  ip netns exec "$ns" sh -c "mount --bind $dir/$n/run /run && exec env STRONGSWAN_CONF=$dir/$n/strongswan.conf $CHARON" >"$dir/$n/stdout" 2>&1 &
  pids+=($!)
done
for n in a b; do
  for i in $(seq 50); do [ -S "$dir/$n/charon.vici" ] && break; sleep 0.1; done
  [ -S "$dir/$n/charon.vici" ] || { echo "charon $n did not start:"; cat "$dir/$n/stdout" "$dir/$n/charon.log" 2>/dev/null | tail -20; exit 1; }
  ns=$A; [ $n = b ] && ns=$B
  ip netns exec "$ns" swanctl --load-all --file "$dir/$n/swanctl.conf" --uri "unix://$dir/$n/charon.vici" >/dev/null
done
ip netns exec "$A" swanctl --initiate --child c --uri "unix://$dir/a/charon.vici" --timeout 15 | tail -3
# Traffic through the tunnel (ESP-in-UDP), then idle long enough for a NAT-keepalive (keep_alive = 2s).
ip netns exec "$A" /usr/bin/python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.1.0.1", 0))
for i in range(3):
    s.sendto(b"sluice lab %d" % i, ("10.2.0.1", 9)); time.sleep(0.2)
'
sleep 5
ip netns exec "$A" swanctl --list-sas --uri "unix://$dir/a/charon.vici" | head -8
kill "${pids[0]}"; sleep 0.5
cp "$dir/cap.pcap" "$out/ike-esp-natt.pcap"
tcpdump -nr "$out/ike-esp-natt.pcap" 2>/dev/null | head -30
