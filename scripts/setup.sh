#!/usr/bin/env bash
# Installs everything Mamori needs on a Debian 12 machine. Idempotent: a second run only checks.
# Why a script and not a Makefile recipe: apt's retry and backports logic reads better in bash.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  nftables python3-nftables wireguard-tools wireguard-go dnsmasq iproute2 iperf3 nmap
  tcpdump  # the lab hub's capture of the VPN relay (tests/long/test_vpn_lines.py): ciphertext only
  python3-dnspython  # vpn/ddns.py: RFC 2136 updates with TSIG of the box's IPv6 name
  bind9 bind9-utils  # the lab hub's DNS primary with a TSIG dynamic zone (tests/long/test_vpn_ddns.py); never left running
  radvd  # the lab router's IPv6 adverts (tests/integration/test_network_ipv6_auto.py); started by the test only
  conntrack ieee-data iputils-ping netcat-openbsd procps curl openssl fail2ban chrony openssh-server
  python3-venv python3-pip systemd time busybox
  util-linux  # setpriv: the daemon starts the web UI and the VPN portal without capabilities (appliance/unprivileged.py)
  rsyslog rsyslog-gnutls  # the SIEM forwarder (siem/) and the lab's test collector; Mamori runs rsyslogd itself
  prometheus  # promtool checks and tests fleet/prometheus/ rules; its server is never left running
  prometheus-alertmanager  # the lab hub's Alertmanager (lab/fleet.py, make fleet-demo); never left running
  chromium chromium-driver
  libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-cjk poppler-utils
)
BACKPORTS_PACKAGES=(suricata suricata-update)

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "make setup must run as root (apt-get and network namespaces need it)." >&2
    exit 1
  fi
}

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

ensure_backports() {
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/mamori-backports.list
    APT_UPDATED=0
  fi
}

apt_update() {
  # Third-party sources on a dev machine may be unreachable; Debian's own must work.
  if [ "${APT_UPDATED:-0}" = 0 ]; then
    apt-get update -o Acquire::Retries=3 || echo "apt-get update reported errors; continuing with Debian's sources" >&2
    APT_UPDATED=1
  fi
}

need_root
ensure_backports
export DEBIAN_FRONTEND=noninteractive
mapfile -t missing < <(missing_packages "${APT_PACKAGES[@]}")
mapfile -t missing_bp < <(missing_packages "${BACKPORTS_PACKAGES[@]}")
if [ "${#missing[@]}" -gt 0 ] || [ "${#missing_bp[@]}" -gt 0 ]; then
  APT_UPDATED=0
  apt_update
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get install -y --no-install-recommends "${missing[@]}"
  fi
  if [ "${#missing_bp[@]}" -gt 0 ]; then
    apt-get install -y --no-install-recommends -t bookworm-backports "${missing_bp[@]}"
  fi
fi
# The Debian packages start their services on install where an init exists; Mamori supervises them itself
# (sshd too: Debian's ssh service is never needed, Mamori runs sshd only while `ssh.enabled`).
for svc in dnsmasq suricata fail2ban chrony ssh rsyslog named radvd; do
  if [ -x "/etc/init.d/$svc" ]; then "/etc/init.d/$svc" stop >/dev/null 2>&1 || true; fi
done
# prometheus' and prometheus-alertmanager's postinst start their servers through invoke-rc.d where policy allows:
# stop each by the PID its init script recorded (the lab starts its own, by PID, in a hub namespace).
for prom in prometheus prometheus-alertmanager; do
  if [ -s "/run/prometheus/$prom.pid" ]; then
    prom_pid=$(cat "/run/prometheus/$prom.pid")
    if [ "$(ps -o comm= -p "$prom_pid" 2>/dev/null)" = "${prom:0:15}" ]; then kill "$prom_pid" || true; fi
    rm -f "/run/prometheus/$prom.pid"
  fi
done

# Suricata parses hostile traffic: the daemon runs it as this account, never as root (ids/account.py).
# Same name and options as the image (scripts/image-customize.sh).
IDS_ACCOUNT=mamori-ids
if ! getent passwd "$IDS_ACCOUNT" >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "Mamori IDS (Suricata)" "$IDS_ACCOUNT"
fi
# The web UI and the VPN portal run as these, never as root. The web UI writes the state database through the
# group mamori-db; the portal opens no database (appliance/child_access.py). Same as the image
# (scripts/image-customize.sh).
getent group mamori-db >/dev/null || groupadd --system mamori-db
for account in "mamori-web:mamori-db:Mamori web UI" "mamori-portal::Mamori VPN portal"; do
  IFS=: read -r name groups comment <<<"$account"
  if ! getent passwd "$name" >/dev/null; then
    useradd --system --user-group ${groups:+--groups "$groups"} --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --comment "$comment" "$name"
  fi
done
# A machine set up while the portal was in mamori-db: out of it (the daemon starts it without the group anyway).
if id -nG mamori-portal | tr ' ' '\n' | grep -qx mamori-db; then
  gpasswd -d mamori-portal mamori-db >/dev/null
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import nftables" 2>/dev/null; then
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install --quiet --upgrade pip
  # compat mode: a .pth with the repo root, so packages added later are found without reinstalling
  .venv/bin/pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "setup: ok"
