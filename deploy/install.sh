#!/usr/bin/env bash
# Install Santinel and what it needs on a Debian machine, as root.
#   deploy/install.sh         the sensor (santinel command, capture tools)
#   deploy/install.sh --dev   also what the test suite needs (lab stacks, Prometheus, linters)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

packages=(libpcap0.8 libpcap-dev tcpdump tshark iproute2 libcap2-bin gcc)
# Debian's own Python needs pip and headers (pcapy-ng builds against libpcap where no wheel fits)
if ! python3 -m pip --version >/dev/null 2>&1; then
  packages+=(python3-pip python3-dev)
fi
if [ "$dev" = 1 ]; then
  packages+=(tcpreplay prometheus prometheus-alertmanager dnsmasq-base mosquitto nmap
             busybox tftpd-hpa telnet openssl systemd)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian services are started by the tests themselves, on loopback ports.
for service in prometheus prometheus-alertmanager mosquitto; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl stop "$service" || true
  fi
done

export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1
if [ "$dev" = 1 ]; then
  python3 -m pip install -q -e '.[dev]'
else
  python3 -m pip install -q -e '.[lab]'
fi
echo "santinel installed: $(command -v santinel)"
