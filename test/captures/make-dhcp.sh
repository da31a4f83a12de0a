#!/usr/bin/env bash
# Captures a Windows-style DHCPINFORM (options 53, 61, 12, 60 "MSFT 5.0", 55 with 121/249, sent
# by scapy) and dnsmasq's DHCPACK carrying classless routes in options 121 and 249, on a veth
# between two namespaces; plus a few crafted packets (NAT-keepalive, IKEv1 Main Mode, IKE on 4500)
# into crafted.pcap. Needs root. Usage: make-dhcp.sh OUTDIR
set -euo pipefail
out=$(realpath "${1:-.}")
tag="pd$$$RANDOM"
C="${tag}c"; S="${tag}s"
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  ip netns del "$C" 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$C"; ip netns add "$S"
ip link add "c${tag}" netns "$C" type veth peer name "s${tag}" netns "$S"
ip -n "$C" link set "c${tag}" name eth0 address 02:00:00:00:00:0c
ip -n "$S" link set "s${tag}" name eth0 address 02:00:00:00:00:05
ip -n "$C" link set lo up; ip -n "$S" link set lo up
ip -n "$C" addr add 10.9.0.50/24 dev eth0; ip -n "$S" addr add 10.9.0.1/24 dev eth0
ip -n "$C" link set eth0 up; ip -n "$S" link set eth0 up

cat > "$dir/dnsmasq.conf" <<CONF
port=0
interface=eth0
bind-interfaces
dhcp-range=10.9.0.0,static,255.255.255.0
dhcp-option=option:router,10.9.0.1
dhcp-option=option:dns-server,10.9.0.1
dhcp-option=option:domain-name,lab.example
dhcp-option=121,10.20.0.0/16,10.9.0.1,192.168.77.0/24,10.9.0.254,0.0.0.0/0,10.9.0.1
dhcp-option=249,10.20.0.0/16,10.9.0.1,192.168.77.0/24,10.9.0.254,0.0.0.0/0,10.9.0.1
dhcp-leasefile=$dir/leases
pid-file=$dir/dnsmasq.pid
log-dhcp
CONF
ip netns exec "$S" tcpdump -i eth0 -U --immediate-mode -w "$dir/dhcp.pcap" -s 0 'udp port 67 or udp port 68' 2>"$dir/tcpdump.err" &
pids+=($!)
ip netns exec "$S" dnsmasq -k -C "$dir/dnsmasq.conf" --log-facility=- >"$dir/dnsmasq.log" 2>&1 &
pids+=($!)
sleep 1
ip netns exec "$C" /usr/bin/python3 - <<'PY'
from scapy.all import Ether, IP, UDP, BOOTP, DHCP, sendp, conf
conf.verb = 0
mac = bytes.fromhex('02000000000c')
# What Windows 10 puts in a DHCPINFORM (observed order): 53, 61 (type 1 + MAC), 12, 60, 55, end.
p = (Ether(src='02:00:00:00:00:0c', dst='ff:ff:ff:ff:ff:ff') /
     IP(src='10.9.0.50', dst='255.255.255.255', ttl=128) /
     UDP(sport=68, dport=67) /
     BOOTP(op=1, xid=0x5a5a1234, ciaddr='10.9.0.50', chaddr=mac + b'\0' * 10, flags=0) /
     DHCP(options=[('message-type', 'inform'), ('client_id', b'\x01' + mac), ('hostname', b'LAB-PC'),
                   ('vendor_class_id', b'MSFT 5.0'),
                   ('param_req_list', [1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252]),
                   'end']))
sendp(p, iface='eth0')
PY
sleep 1.5
kill "${pids[0]}"; sleep 0.3
cp "$dir/dhcp.pcap" "$out/dhcp-inform-ack.pcap"
tcpdump -nr "$out/dhcp-inform-ack.pcap" 2>/dev/null
grep -i -E "inform|ack|121|249" "$dir/dnsmasq.log" | head

# Crafted packets (scapy), for kinds the live runs do not produce on demand.
/usr/bin/python3 - "$out/crafted.pcap" <<'PY'
import sys
from scapy.all import IP, UDP, Raw, wrpcap
from scapy.layers.isakmp import ISAKMP, ISAKMP_payload_SA, ISAKMP_payload_Proposal, ISAKMP_payload_Transform, ISAKMP_payload_VendorID
A, B = '198.51.100.10', '203.0.113.20'
pk = []
# RFC 3948 2.3 NAT-keepalive: one 0xFF byte on 4500.
pk.append(IP(src=A, dst=B) / UDP(sport=4500, dport=4500) / Raw(b'\xff'))
# IKEv1 Main Mode first message (SA with one proposal / transform, a vendor ID).
ike1 = ISAKMP(init_cookie=bytes.fromhex('1122334455667788'), exch_type=2, next_payload=1) / \
    ISAKMP_payload_SA(prop=ISAKMP_payload_Proposal(trans=ISAKMP_payload_Transform(transforms=[('Encryption', 'AES-CBC'), ('KeyLength', 128), ('Hash', 'SHA'), ('Authentication', 'PSK'), ('GroupDesc', '1024MODPgr'), ('LifeType', 'Seconds'), ('LifeDuration', 28800)])), next_payload=13) / \
    ISAKMP_payload_VendorID(load=bytes.fromhex('4a131c81070358455c5728f20e95452f'))
pk.append(IP(src=A, dst=B) / UDP(sport=500, dport=500) / ike1)
# IKEv1 Quick Mode with the E flag (payloads encrypted): the walk must stop at the header.
ike1e = ISAKMP(init_cookie=bytes.fromhex('1122334455667788'), resp_cookie=bytes.fromhex('99aabbccddeeff00'), exch_type=32, next_payload=8, flags=1, id=0x01020304) / Raw(bytes(range(48)))
pk.append(IP(src=A, dst=B) / UDP(sport=4500, dport=4500) / Raw(b'\0\0\0\0') / ike1e)
# A truncated IKE header on 500 (invalid) and an ESP-in-UDP shorter than SPI+seq (invalid).
pk.append(IP(src=A, dst=B) / UDP(sport=500, dport=500) / Raw(bytes(20)))
pk.append(IP(src=A, dst=B) / UDP(sport=4500, dport=4500) / Raw(b'\x01\x02\x03\x04\x00'))
wrpcap(sys.argv[1], pk, linktype=101)  # LINKTYPE_RAW
PY
tcpdump -nr "$out/crafted.pcap" 2>/dev/null
