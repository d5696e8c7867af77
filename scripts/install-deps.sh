#!/usr/bin/env bash
# Installs what unibus needs and is missing: Debian packages (nats-server, bubblewrap, openssl, minisign, rsyslog,
# promtool, shellcheck, systemd-analyze, gcc, the NATS C client, wg, wireguard-go and nft) with apt when run as root, and the npm dependencies from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

need_node_major=20
if ! command -v node >/dev/null 2>&1; then
  echo "unibus: Node.js ${need_node_major}+ is required (apt-get install nodejs, or your usual Node install)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt "$need_node_major" ]; then
  echo "unibus: Node.js ${need_node_major}+ is required, found $(node --version)" >&2
  exit 1
fi

missing=()
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v minisign >/dev/null 2>&1 || missing+=(minisign)
# promtool (Debian ships it in prometheus): the tests check /metrics with it. No Prometheus server runs.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# A C compiler with libc's and the kernel's headers: scripts/build.ts compiles dist/unibus-netrules (the
# Landlock step of an app's sandbox) with it. And the NATS C client: test/srv-discovery.test.ts finds
# agents with a client other than nats.js.
command -v cc >/dev/null 2>&1 || missing+=(gcc)
dpkg -s libc6-dev >/dev/null 2>&1 || missing+=(libc6-dev)
dpkg -s linux-libc-dev >/dev/null 2>&1 || missing+=(linux-libc-dev)
dpkg -s libnats-dev >/dev/null 2>&1 || missing+=(libnats-dev)
# rsyslog with its TLS driver: test/syslog-forward.test.ts runs its own rsyslogd; none runs system-wide.
command -v rsyslogd >/dev/null 2>&1 || missing+=(rsyslog)
dpkg -s rsyslog-gnutls >/dev/null 2>&1 || missing+=(rsyslog-gnutls)
# The WireGuard mesh (agent run --mesh): wg and wireguard-go where the kernel has no WireGuard;
# test/mesh.test.ts runs three nodes' interfaces with them in network namespaces, and pings across.
command -v wg >/dev/null 2>&1 || missing+=(wireguard-tools)
command -v wireguard-go >/dev/null 2>&1 || missing+=(wireguard-go)
command -v ping >/dev/null 2>&1 || missing+=(iputils-ping)
# The overlay's packet filter (agent run --mesh --firewall): nft, where the kernel has nf_tables.
command -v nft >/dev/null 2>&1 || missing+=(nftables)
# make test runs shellcheck on every shell script and systemd-analyze on the deploy's units.
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "unibus: installing ${missing[*]} with apt" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Packages start no services while they install (policy-rc.d 101: "not allowed"): unibus runs
    # its own nats-server, and only promtool is wanted of prometheus.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ "$own_policy" = 1 ] && rm -f "$policy"
    # The Debian packages enable a system-wide nats-server on 4222, a Prometheus server on 9090 and rsyslog;
    # only what this run installed is disabled (a machine's own rsyslog, say, is left as it was).
    if [ -d /run/systemd/system ]; then
      for unit in nats-server prometheus prometheus-node-exporter rsyslog; do
        case " ${missing[*]} " in
          *" ${unit%-node-exporter} "*) systemctl disable --now "$unit" >/dev/null 2>&1 || true ;;
        esac
      done
    fi
  else
    echo "unibus: missing ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.unibus-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "unibus: installing npm dependencies" >&2
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
