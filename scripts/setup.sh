#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine (run as root): system packages only when missing
# (one apt-get update), then npm ci when node_modules is absent or stale. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential python3 pkg-config libmnl-dev libnetfilter-queue-dev iptables iproute2 tcpdump
      conntrack procps kmod iputils-ping python3-scapy
      libcharon-extra-plugins strongswan-swanctl charon-systemd
      dnsmasq-base kea-dhcp4-server isc-dhcp-relay isc-dhcp-client dhcpcd-base udhcpc dhcping
      netsniff-ng iperf3 nmap nftables tshark groff-base keepalived)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Host services are never touched: Debian may start strongswan, kea-dhcp4-server, isc-dhcp-relay or keepalived
# on install, and on a real gateway they are its VPN and DHCP. The labs start their own copies inside
# network namespaces, each with its own pid, lock, lease and VICI paths (src/lab/ipsec.ts bind-mounts
# a private /run for charon; Kea gets KEA_PIDFILE_DIR/KEA_LOCKFILE_DIR), so they coexist.

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >/dev/null
fi
