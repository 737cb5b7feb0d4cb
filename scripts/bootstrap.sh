#!/usr/bin/env bash
# Prepare this machine for GSRA's tests, lab and benchmarks. Idempotent: a second run only
# checks (dpkg status, the Node runtime's version, a lock-file hash, cargo's own freshness check)
# and costs a second or two. Run by `npm test`, `npm run lab` and `npm run bench` before anything else.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'bootstrap: %s\n' "$*" >&2; }

# 1. Debian packages the tests, the lab and the benchmark need (the bench's peers: wireguard-go,
# OpenVPN; linux-perf for `npm run bench -- --profile`).
APT_PACKAGES=(
  iproute2 iptables tcpdump ethtool procps psmisc iputils-ping netcat-openbsd
  slapd ldap-utils openssl
  samba samba-ad-dc samba-ad-provision samba-dsdb-modules ldb-tools
  vsftpd openssh-server openssh-client sshpass iperf3 curl lftp dnsutils
  wireguard-go wireguard-tools openvpn linux-perf
  libssl-dev pkg-config
  rustc cargo libstd-rust-dev-windows gcc-mingw-w64-x86-64
  # The Windows agent: built on Linux (wixl makes the MSI), checked under wine (docs/windows.md).
  wine64 msitools wixl osslsigncode
  # The gateway's status page is checked in a headless browser (gateway/test/, test/e2e/ops.test.ts).
  chromium
  # A Unix datagram socket bound in the audit-to-syslog test (gateway/test/syslog.test.ts).
  python3
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: ${missing[*]} (run as root, or install them)"; exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  # Debian's post-install scripts would start system slapd/vsftpd/sshd; the lab runs its own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "${added_policy:-}" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# 2. The Node runtime: Node 24 LTS from the npm registry into .runtime/node/ when the machine's
# node is older than package.json's engines.node (scripts/install-node.sh). From here on every
# command runs on it, npm ci included: packages are installed by the runtime that will load them
# (engines checks, install scripts, platform-specific optional packages), not by the machine's older
# node. Only the outer `npm test` process, which reads package.json and starts this script, stays
# on the machine's node.
bash scripts/install-node.sh
# shellcheck source=scripts/runtime.sh
. scripts/runtime.sh
gsra_use_runtime

# 3. npm dependencies, reinstalled when the lock file or the runtime changed.
stamp=node_modules/.gsra-bootstrap-stamp
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node --version)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing npm packages (npm ci, on node $(node --version))"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# 4. The native engine (cargo decides whether anything changed).
if [ -f native/build.sh ]; then
  bash native/build.sh
fi

# 4. The Windows parts GSRA ships but does not build (node.exe, WinDivert), sha256-pinned, cached.
bash scripts/win-deps.sh >/dev/null
