#!/usr/bin/env bash
# Deploys unibus to every node in cluster.env. Dry run by default: prints what it would do on each
# node; --apply does it. First the bundles bin/* run (scripts/build.ts, dist/). Per node: install
# the package and nats-server, copy that node's certificates, keys and rendered env, install the
# hardened systemd units, start membershipd; once every node's /healthz answers ok, enroll each
# node's agent through its own membershipd and start it.
#
#   deploy-cluster.sh [--env FILE] [--secrets DIR] [--apply] [--only NAME]
#                     [--transport ssh|netns] [--netns-root DIR] [--netns-prefix P]
#                     [--network-only | --teardown | --rekey-store [--discard-old] | --roll-certs]
#
# --transport ssh (default) runs each step as root over `ssh SSH_USER@SSH_HOST sudo`. --transport
# netns runs the same steps on this machine inside the network namespace P<NAME> (default prefix
# unibus-), with each node's files under DIR/<NAME>/ instead of /, and processes started directly
# instead of by systemd: this is how the cluster is tested (test/cluster.test.ts). A missing
# namespace is made first (deploy/cluster/netns.sh: a veth into the bridge Pbr, which has no
# address; the node's PUBLIC_IP and WG_IP inside); --network-only stops there. --teardown stops
# what runs in the namespaces and removes them and the bridge (the node files stay). Over ssh the
# package is HEAD (git archive) with its bundles built from that same tree, and no node_modules: the
# bundles hold every dependency, so servers get no npm install and no dev dependencies. In netns
# mode the nodes run this checkout's bin/*, whose bundles are rebuilt first if a source is newer.
# Rerunning is safe: what is in place is kept, a node that runs is left running.
# --roll-certs puts each node's TLS material in place and restarts it, one node at a time without
# downtime: how each phase of a CA rotation reaches the nodes. --rekey-store does that and rebuilds
# each node's store under its next at-rest key (generate-cluster-certs.sh --next-at-rest-keys)
# through R3 replication. Both: deploy/cluster/roll.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"

env_file="$here/cluster.env" secrets="$here/secrets" apply=0 transport=ssh only=""
netns_root="$repo/local_files/netns" netns_prefix="unibus-" network_only=0 teardown=0 rekey=0 discard_old=0 roll_certs=0
while [ $# -gt 0 ]; do
  case "$1" in
    --env) env_file=$2; shift 2 ;;
    --secrets) secrets=$2; shift 2 ;;
    --apply) apply=1; shift ;;
    --only) only=$2; shift 2 ;;
    --transport) transport=$2; shift 2 ;;
    --netns-root) netns_root=$2; shift 2 ;;
    --netns-prefix) netns_prefix=$2; shift 2 ;;
    --network-only) network_only=1; shift ;;
    --teardown) teardown=1; shift ;;
    --rekey-store) rekey=1; shift ;;
    --discard-old) discard_old=1; shift ;;
    --roll-certs) roll_certs=1; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "deploy-cluster.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$transport" in ssh|netns) ;; *) echo "deploy-cluster.sh: --transport is ssh or netns, not $transport" >&2; exit 2 ;; esac
if [ "$network_only$teardown" != 00 ] && [ "$transport" != netns ]; then
  echo "deploy-cluster.sh: --network-only and --teardown are for --transport netns" >&2; exit 2
fi
require_no_placeholders "$env_file"
# shellcheck disable=SC1090
source "$env_file"
# Older cluster.env files lack these two: the defaults are the overlay's own.
OVERLAY_CIDR="${OVERLAY_CIDR:-10.0.0.0/24}" WG_PORT="${WG_PORT:-51820}"

say() { printf '[%s] %s\n' "$1" "$2"; }

# The address of a node on the network cluster.env chose: routes and /healthz (the monitor) use it.
node_addr() { if [ "$ROUTE_NETWORK" = wg ]; then echo "$4"; else echo "$3"; fi; }
# Clients (agents joining with an invite, the operator's CLI) reach the client port at PUBLIC_IP in
# either mode: a node that is joining is not on the mesh yet. TLS and nkey auth guard that port.
client_url() { echo "nats://$(host_port "$1" "$NATS_CLIENT_PORT")"; }
host_port() { case "$1" in *:*) echo "[$1]:$2" ;; *) echo "$1:$2" ;; esac; }

# ROUTE_NETWORK=wg: the mesh's interface (unibus0; in netns mode one name per node, as wireguard-go's
# socket in /run/wireguard is the host's, not the namespace's), and the node's WireGuard endpoint.
wg_iface() { # NAME
  local i=0 e n
  [ "$transport" = netns ] || { echo unibus0; return; }
  for e in "${CLUSTER_NODES[@]}"; do
    read -r n _ <<<"$e"
    [ "$n" = "$1" ] && break
    i=$((i + 1))
  done
  echo "${netns_prefix}w$i"
}
wg_endpoint() { host_port "$1" "$WG_PORT"; }
ip_int() { local IFS=. a b c d; read -r a b c d <<<"$1"; echo $(((a << 24) + (b << 16) + (c << 8) + d)); }

# Every WG_IP a host address of OVERLAY_CIDR: the fleet hands out overlay addresses from it, and
# each control-plane node's invite pins its WG_IP.
check_wg_ips() {
  local base=${OVERLAY_CIDR%/*} bits=${OVERLAY_CIDR#*/} e n w size start x
  if ! [[ "$OVERLAY_CIDR" =~ ^[0-9]+(\.[0-9]+){3}/[0-9]+$ ]] || [ "$bits" -lt 8 ] || [ "$bits" -gt 30 ]; then
    echo "deploy-cluster.sh: OVERLAY_CIDR $OVERLAY_CIDR is not an IPv4 CIDR from /8 to /30" >&2
    exit 2
  fi
  size=$((1 << (32 - bits)))
  start=$(($(ip_int "$base") / size * size))
  for e in "${CLUSTER_NODES[@]}"; do
    read -r n _ _ w <<<"$e"
    [[ "$w" =~ ^[0-9]+(\.[0-9]+){3}$ ]] || { echo "deploy-cluster.sh: $n's WG_IP $w is not an IPv4 address (the mesh is IPv4)" >&2; exit 2; }
    x=$(ip_int "$w")
    if [ "$x" -le "$start" ] || [ "$x" -ge $((start + size - 1)) ]; then
      echo "deploy-cluster.sh: $n's WG_IP $w is not a host address of OVERLAY_CIDR $OVERLAY_CIDR" >&2
      exit 2
    fi
  done
}
if [ "$ROUTE_NETWORK" = wg ]; then check_wg_ips; fi

# The cluster's other servers as the node's static peers (services/agent/mesh/static-peers.ts),
# from the public keys each node's `mesh key` printed (kept in the secrets dir: they are public).
mesh_peers_json() { # NAME
  local sep="" e n p w key
  printf '{"peers":['
  for e in "${CLUSTER_NODES[@]}"; do
    read -r n _ p w <<<"$e"
    [ "$n" = "$1" ] && continue
    key="<$n's key, read at --apply>"
    if [ -s "$secrets/nodes/$n/wg.pub" ]; then key=$(cat "$secrets/nodes/$n/wg.pub"); fi
    printf '%s{"node":"%s","public_key":"%s","overlay_ip":"%s","endpoint":"%s"}' "$sep" "$n" "$key" "$w" "$(wg_endpoint "$p")"
    sep=,
  done
  printf ']}\n'
}

# The agent's flags (agent.env): --mesh over the static peers, and the overlay's filter with the
# route port open to the cluster's other servers only.
agent_args() { # NAME
  local e n w peers=""
  [ "$ROUTE_NETWORK" = wg ] || return 0
  for e in "${CLUSTER_NODES[@]}"; do
    read -r n _ _ w <<<"$e"
    [ "$n" = "$1" ] || peers="$peers --route-peer $w"
  done
  echo "--mesh --wg-interface $(wg_iface "$1") --mesh-static $ETC/mesh-peers.json --mesh-state $MESH_STATE --firewall --route-port $NATS_ROUTE_PORT$peers"
}

# Per-node paths: the real ones over ssh; under the node's own root directory in netns mode.
paths() { # NAME
  if [ "$transport" = netns ]; then
    ROOT="$netns_root/$1" APP="$repo"
  else
    ROOT="" APP=/opt/unibus
  fi
  ETC="$ROOT/etc/unibus" DATA="$ROOT/var/lib/unibus" UNITS="$ROOT/etc/systemd/system" RUN="$ROOT/run/unibus"
  # The agent's mesh state for membershipd's /healthz: the agent unit's RuntimeDirectory (root's, 0755).
  MESH_STATE="$ROOT/run/unibus-agent/mesh.json"
}

# Copies a local directory's contents to DEST on the node (modes kept).
put_dir() { # NAME SSH_HOST SRC DEST
  if [ "$transport" = netns ]; then
    mkdir -p "$4" && cp -a "$3/." "$4/"
  else
    tar -C "$3" -cf - . | ssh -o BatchMode=yes "$SSH_USER@$2" sudo bash -c "'mkdir -p $4 && tar -C $4 -xf -'"
  fi
}

# Vault mode (docs/operations.md): once a node's at-rest key is adopted into its vault, the
# operator replaces secrets/nodes/NAME/at-rest.key with at-rest.vault; membershipd then waits for
# the key its agent hands over on tmpfs, and no key file is copied to the node again.
vault_env() { # NAME
  if [ -f "$secrets/nodes/$1/at-rest.vault" ]; then echo "UNIBUS_AT_REST_KEY_HANDOFF=$RUN/$1/at-rest.key"; fi
}

render_env() { # NAME ADDR PUBLIC_IP
  local name=$1 addr=$2 routes="" advertise
  advertise=$(client_url "$3")
  for e in "${CLUSTER_NODES[@]}"; do
    read -r n _s p w <<<"$e"
    [ "$n" = "$name" ] && continue
    a=$(node_addr "$n" "$_s" "$p" "$w")
    routes="${routes:+$routes,}$a:$NATS_ROUTE_PORT"
    advertise="$advertise,$(client_url "$p")"
  done
  cat <<ENV
# rendered by deploy-cluster.sh for $name; no secrets here (they are files next to it)
UNIBUS_DATA_DIR=$DATA/membershipd
UNIBUS_SERVER_NAME=$name
UNIBUS_CLUSTER_NAME=$CLUSTER_NAME
UNIBUS_NATS_HOST=0.0.0.0
UNIBUS_NATS_PORT=$NATS_CLIENT_PORT
UNIBUS_HTTP_HOST=$addr
UNIBUS_HTTP_PORT=$HTTP_PORT
UNIBUS_AT_REST_KEY_FILE=$ETC/at-rest.key
UNIBUS_ADVERTISE=$advertise
UNIBUS_REPLICAS=$KV_REPLICAS
UNIBUS_ROUTES=$routes
UNIBUS_ROUTE_HOST=$addr
UNIBUS_ROUTE_PORT=$NATS_ROUTE_PORT
UNIBUS_ROUTE_TLS_DIR=$ETC/route
UNIBUS_ROUTE_SECRET_FILE=$ETC/route.secret
UNIBUS_OVERLAY_CIDR=$OVERLAY_CIDR
$(if [ "$ROUTE_NETWORK" = wg ]; then echo "UNIBUS_MESH_STATE_FILE=$MESH_STATE"; fi)
$(vault_env "$name")
ENV
}

# Everything one node gets, staged locally first so both transports copy the same files.
stage() { # NAME ADDR STAGE_DIR PUBLIC_IP
  local name=$1 addr=$2 s=$3 m="$secrets/nodes/$1" public=$4
  [ -d "$m" ] || { echo "deploy-cluster.sh: no material for node $name in $secrets/nodes; rerun generate-cluster-certs.sh" >&2; exit 1; }
  (umask 077
   mkdir -p "$s/etc/route" "$s/units" "$s/data/tls" "$s/data/auth"
   render_env "$name" "$addr" "$public" >"$s/etc/node.env"
   if [ -f "$m/at-rest.key" ]; then cp "$m/at-rest.key" "$s/etc/at-rest.key"; fi
   cp "$secrets/route.secret" "$s/etc/route.secret"
   cp "$m/route/." "$s/etc/route/" -a
   cp -a "$m/tls/ca.pem" "$m/tls/server-chain.pem" "$m/tls/server.key" "$s/data/tls/"
   cp -a "$secrets/identities/auth/." "$s/data/auth/"
   cp -a "$secrets/identities/service.nk" "$secrets/identities/admin.nk" "$s/data/"
   render_unit unibus-membershipd.service "$CLUSTER_USER" "$ETC" "$APP" "$DATA" >"$s/units/unibus-membershipd.service"
   render_unit unibus-agent.service "$CLUSTER_USER" "$ETC" "$APP" "$DATA" >"$s/units/unibus-agent.service"
   echo "UNIBUS_AGENT_ARGS=\"$(agent_args "$name")\"" >"$s/etc/agent.env"
   if [ "$ROUTE_NETWORK" = wg ]; then
     mesh_peers_json "$name" >"$s/etc/mesh-peers.json"
     echo "UNIBUS_MESH_ARGS=\"$(mesh_args "$name" "$addr")\"" >"$s/etc/mesh.env"
     render_unit unibus-mesh.service "$CLUSTER_USER" "$ETC" "$APP" "$DATA" >"$s/units/unibus-mesh.service"
   fi
   chmod 644 "$s/etc/"*.env "$s/units/"*)
}

mesh_args() { # NAME WG_IP
  echo "--wg-interface $(wg_iface "$1") --overlay-address $2/${OVERLAY_CIDR#*/} --listen-port $WG_PORT --mesh-static $ETC/mesh-peers.json"
}

install_steps() { # runs on the node; with ROUTE_NETWORK=wg the mesh's tools too
  local tools="nats-server node bwrap" pkgs="nats-server nodejs bubblewrap openssl"
  if [ "$ROUTE_NETWORK" = wg ]; then tools="$tools wg wireguard-go nft" pkgs="$pkgs wireguard-tools wireguard-go nftables"; fi
  cat <<SH
set -euo pipefail
missing=0
for t in $tools; do command -v "\$t" >/dev/null || missing=1; done
if [ "$transport" = ssh ]; then
  [ "\$missing" = 0 ] ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null; }
  id -u "$CLUSTER_USER" >/dev/null 2>&1 || useradd --system --home-dir /var/lib/unibus --shell /usr/sbin/nologin "$CLUSTER_USER"
else
  [ "\$missing" = 0 ] || { echo "one of $tools is not installed on this machine (scripts/install-deps.sh)" >&2; exit 1; }
fi
mkdir -p "$ETC" "$DATA/membershipd" "$DATA/agent" "$UNITS" "$RUN"
chmod 700 "$ETC" "$DATA/membershipd" "$DATA/agent"
SH
}

# Copies keep what is in place: a running node's data dir already holds what it was given.
place_steps() {
  cat <<SH
set -euo pipefail
stage="\$1"
cp -a "\$stage/etc/." "$ETC/"
cp -a -n "\$stage/data/." "$DATA/membershipd/"
cp "\$stage/units/"*.service "$UNITS/"
# The agent runs as root (docs/operations.md, "The agent's privileges"): its data dir, and the one
# above it, stay root's; the services' directories in it belong to their own UIDs.
if [ "$transport" = ssh ]; then
  chown -R "$CLUSTER_USER:$CLUSTER_USER" "$ETC" "$DATA/membershipd"
  chown root:root "$DATA" "$DATA/agent"
  systemctl daemon-reload
fi
SH
}

start_steps() { # SERVICE: membershipd | agent
  cat <<SH
set -euo pipefail
if [ "$transport" = ssh ]; then systemctl enable --now "unibus-$1" >/dev/null; exit 0; fi
pidfile="$RUN/$1.pid"
if [ -f "\$pidfile" ] && kill -0 "\$(cat "\$pidfile")" 2>/dev/null; then echo "already running (pid \$(cat "\$pidfile"))"; exit 0; fi
if [ "$1" = membershipd ]; then
  setsid bash -c 'set -a; . "\$1"; set +a; exec "\$2/bin/membershipd"' _ "$ETC/node.env" "$APP" >>"$DATA/membershipd.log" 2>&1 </dev/null &
else
  setsid bash -c 'set -a; . "\$1"; set +a; exec "\$2/bin/unibus-agent" --data-dir "\$3" run \$UNIBUS_AGENT_ARGS' _ "$ETC/agent.env" "$APP" "$DATA/agent" >>"$DATA/agent.log" 2>&1 </dev/null &
fi
echo \$! >"\$pidfile"
echo "started (pid \$!)"
SH
}

# With ROUTE_NETWORK=wg the invite pins the node's WG_IP as its overlay address, and the agent
# enrolls with the key pair the mesh already uses (wg.key) and its PUBLIC_IP:WG_PORT endpoint.
enroll_steps() { # NAME PUBLIC_IP WG_IP: the node's agent joins through its own membershipd, once
  local pin="" endpoint=""
  if [ "$ROUTE_NETWORK" = wg ]; then pin="--overlay-ip $3" endpoint="--wg-endpoint $(wg_endpoint "$2")"; fi
  cat <<SH
set -euo pipefail
if "$APP/bin/unibus-agent" --data-dir "$DATA/agent" status >/dev/null 2>&1; then echo "already enrolled"; exit 0; fi
"$APP/bin/unibus" --data-dir "$DATA/membershipd" node invite --note "deploy-cluster: $1" $pin | head -1 |
  "$APP/bin/unibus-agent" --data-dir "$DATA/agent" --name "$1" join $endpoint --token -
SH
}

# The node's WireGuard key pair is made on the node (its private key never leaves it); the public
# key comes back and is kept in the secrets dir, where the other nodes' static peers are read from.
read_wg_key() { # NAME HOST
  local key
  if [ "$apply" = 0 ]; then say "$1" "would make this node's WireGuard key pair (on the node) and read its public key"; return; fi
  say "$1" "make this node's WireGuard key pair (on the node) and read its public key"
  key=$(run_quiet "$1" "$2" "$(printf '"%s/bin/unibus-agent" --data-dir "%s/agent" mesh key' "$APP" "$DATA")")
  [[ "$key" =~ ^[A-Za-z0-9+/]{43}=$ ]] || { echo "deploy-cluster.sh: $1 answered no WireGuard public key (got: $key)" >&2; exit 1; }
  (umask 022 && echo "$key" >"$secrets/nodes/$1/wg.pub")
}

# Brings the interface up (or updates its static peers when it is up). Over ssh through the
# unibus-mesh unit, so wireguard-go lives in that unit's cgroup; a unit already active is not
# restarted (that would stop wireguard-go and cut the routes): mesh up runs again beside it.
mesh_up_steps() {
  cat <<SH
set -euo pipefail
set -a; . "$ETC/mesh.env"; set +a
if [ "$transport" = ssh ]; then
  systemctl enable unibus-mesh >/dev/null 2>&1
  if ! systemctl is-active --quiet unibus-mesh; then systemctl start unibus-mesh; systemctl status --no-pager -n 0 unibus-mesh >/dev/null; exit 0; fi
fi
# shellcheck disable=SC2086 # the rendered flags, one word each
"$APP/bin/unibus-agent" --data-dir "$DATA/agent" mesh up \$UNIBUS_MESH_ARGS
SH
}

healthy_steps() { # ADDR: waits for /healthz to answer ok, with a line every 10 s on what it answers
  cat <<SH
node -e '
  const url = process.argv[1], started = Date.now(), deadline = started + Number(process.argv[2]);
  let told = started, last = "no answer yet";
  const why = (r, h) => "HTTP " + r.status + ": " + ((h.problems || []).join("; ") || h.status);
  const answer = (r) => r.json().then((h) => (r.ok ? null : why(r, h)), () => "HTTP " + r.status);
  (async () => {
    for (;;) {
      last = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(answer, (e) => String(e.cause?.code || e.name));
      if (last === null) return process.exit(0);
      if (Date.now() > deadline) { console.error("no healthy answer from " + url + " (last: " + last + ")"); process.exit(1); }
      if (Date.now() - told >= 10000) { told = Date.now(); console.log("  still waiting (" + Math.round((told - started) / 1000) + " s): " + last); }
      await new Promise((r) => setTimeout(r, 500));
    }
  })();' "http://$1:$HTTP_PORT/healthz" "${DEPLOY_HEALTH_BUDGET_MS:-240000}"
SH
}

run_step() { # NAME HOST LABEL SCRIPT [ARGS…]
  local name=$1 host=$2 label=$3 script=$4; shift 4
  if [ "$apply" = 0 ]; then say "$name" "would $label"; return; fi
  say "$name" "$label"
  if [ "$transport" = netns ]; then
    ip netns exec "${netns_prefix}${name}" bash -c "$script" _ "$@"
  else
    ssh -o BatchMode=yes -o ConnectTimeout=10 "$SSH_USER@$host" sudo bash -c "$(printf '%q' "$script")" _ "$@"
  fi
}

# A command's stdout only (run_step says what it does first); apply mode only.
run_quiet() { # NAME HOST SCRIPT
  if [ "$transport" = netns ]; then
    ip netns exec "${netns_prefix}$1" bash -c "$3"
  else
    ssh -o BatchMode=yes -o ConnectTimeout=10 "$SSH_USER@$2" sudo bash -c "$(printf '%q' "$3")"
  fi
}

# Teardown stops a node's agent before the rest, as systemd does (the agent's unit is ordered after
# membershipd's): with its membershipd gone first, an agent waits on NATS instead of exiting.
stop_agent() { # NAME
  local pidfile="$RUN/agent.pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  [ "$(ip netns identify "$pid" 2>/dev/null)" = "${netns_prefix}$1" ] || return 0
  if [ "$apply" = 0 ]; then say "$1" "would run: kill -TERM $pid (the agent, before membershipd)"; return 0; fi
  say "$1" "kill -TERM $pid (the agent, before membershipd)"
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
}

selected=()
for e in "${CLUSTER_NODES[@]}"; do
  read -r n _ <<<"$e"
  if [ -z "$only" ] || [ "$only" = "$n" ]; then selected+=("$e"); fi
done
[ ${#selected[@]} -gt 0 ] || { echo "deploy-cluster.sh: no node named $only in $env_file" >&2; exit 2; }
[ "$apply" = 1 ] || echo "dry run ($transport): nothing is changed; --apply does it"

# netns: the namespaces and bridge first (or, with --teardown, away with them).
if [ "$transport" = netns ]; then
  # shellcheck source=SCRIPTDIR/netns.sh
  source "$here/netns.sh"
  if [ "$teardown" = 1 ]; then
    for e in "${selected[@]}"; do
      read -r name _ <<<"$e"
      paths "$name"
      stop_agent "$name"
    done
    netns_down "$apply" "$netns_prefix" "$only" "${CLUSTER_NODES[@]}"
    # A pid file would name whatever process gets that pid next.
    for e in "${selected[@]}"; do
      read -r name _ <<<"$e"
      paths "$name"
      if [ "$apply" = 1 ]; then rm -f "$RUN/membershipd.pid" "$RUN/agent.pid"; fi
    done
    exit 0
  fi
  netns_up "$apply" "$netns_prefix" "$only" "${CLUSTER_NODES[@]}"
  [ "$network_only" = 0 ] || exit 0
fi
[ -d "$secrets/identities" ] || { echo "deploy-cluster.sh: no cluster material in $secrets; run generate-cluster-certs.sh first" >&2; exit 1; }

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
if [ "$rekey$roll_certs" != 00 ]; then
  # shellcheck source=SCRIPTDIR/roll.sh
  source "$here/roll.sh"
  if [ "$rekey" = 1 ]; then roll_cluster rekey; else roll_cluster certs; fi
  exit 0
fi

# The package the nodes run. Over ssh: HEAD as git archives it plus dist/ built from exactly that
# tree (the checkout's node_modules lent for the build only); the files keep the commit's time and
# dist/ is newer, so bin/* on the node find it up to date (they cannot rebuild there: no esbuild, a
# read-only /opt under ProtectSystem=strict). In netns mode: this checkout, its bundles brought up to date.
release="$staging/release"
if [ "$apply" = 0 ]; then
  say local "would build the bundles (dist/) $([ "$transport" = ssh ] && echo "of HEAD for the package" || echo "of this checkout if a source is newer")"
elif [ "$transport" = ssh ]; then
  say local "build the package: HEAD ($(git -C "$repo" rev-parse --short HEAD)) and its bundles"
  mkdir -p "$release"
  git -C "$repo" archive --format=tar HEAD | tar -C "$release" -xf -
  ln -s "$repo/node_modules" "$release/node_modules"
  node --import "file://$repo/node_modules/tsx/dist/loader.mjs" "$release/scripts/build.ts"
  rm "$release/node_modules"
else
  say local "bring this checkout's bundles (dist/) up to date"
  # shellcheck source=SCRIPTDIR/../../bin/lib/launch.sh
  source "$repo/bin/lib/launch.sh"
  bundles_ensure "$repo"
fi
for e in "${selected[@]}"; do
  read -r name host public wg <<<"$e"
  paths "$name"
  run_step "$name" "$host" "install nats-server and unibus ($APP), create $ETC and $DATA" "$(install_steps)"
  if [ "$apply" = 1 ] && [ "$transport" = ssh ]; then
    say "$name" "copy the unibus package (with its bundles, without node_modules) to $APP"
    tar --owner=0 --group=0 --numeric-owner -C "$release" -cf - . | ssh -o BatchMode=yes "$SSH_USER@$host" sudo bash -c "'mkdir -p $APP && tar -C $APP -xf - && rm -rf $APP/node_modules'"
  fi
  if [ "$ROUTE_NETWORK" = wg ]; then read_wg_key "$name" "$host"; fi
done
if [ "$ROUTE_NETWORK" = wg ] && [ "$apply" = 1 ]; then
  for e in "${CLUSTER_NODES[@]}"; do
    read -r name _ <<<"$e"
    [ -s "$secrets/nodes/$name/wg.pub" ] ||
      { echo "deploy-cluster.sh: no WireGuard public key of $name in $secrets/nodes/$name/wg.pub; deploy every node once (without --only)" >&2; exit 1; }
  done
fi
for e in "${selected[@]}"; do
  read -r name host public wg <<<"$e"
  paths "$name"
  addr=$(node_addr "$name" "$host" "$public" "$wg")
  stage "$name" "$addr" "$staging/$name" "$public"
  if [ "$apply" = 1 ] && [ "$transport" = ssh ]; then
    put_dir "$name" "$host" "$staging/$name" "/tmp/unibus-stage"
    stage_dir=/tmp/unibus-stage
  else
    stage_dir="$staging/$name"
  fi
  run_step "$name" "$host" "place certificates, keys, node.env (routes to the other nodes over $ROUTE_NETWORK) and systemd units" "$(place_steps)" "$stage_dir"
  if [ "$ROUTE_NETWORK" = wg ]; then
    run_step "$name" "$host" "bring the mesh up on $(wg_iface "$name") at $wg (the other servers as peers) before the routes" "$(mesh_up_steps)"
  fi
  run_step "$name" "$host" "start membershipd" "$(start_steps membershipd)"
done
for e in "${selected[@]}"; do
  read -r name host public wg <<<"$e"
  paths "$name"
  run_step "$name" "$host" "wait for /healthz on $(node_addr "$name" "$host" "$public" "$wg"):$HTTP_PORT" "$(healthy_steps "$(node_addr "$name" "$host" "$public" "$wg")")"
done
# The operator's CLI needs the bootstrap admin's JWT, which membershipd issues (and records as an event).
read -r first first_host first_public _ <<<"${selected[0]}"
paths "$first"
if [ "$apply" = 1 ]; then
  say "$first" "fetch the bootstrap admin's credentials into $secrets/identities/admin.creds"
  (umask 077
   if [ "$transport" = netns ]; then cat "$DATA/membershipd/admin.creds"; else ssh -o BatchMode=yes "$SSH_USER@$first_host" sudo cat "$DATA/membershipd/admin.creds"; fi >"$secrets/identities/admin.creds.new")
  mv "$secrets/identities/admin.creds.new" "$secrets/identities/admin.creds"
else
  say "$first" "would fetch the bootstrap admin's credentials into $secrets/identities/admin.creds"
fi
for e in "${selected[@]}"; do
  read -r name host public wg <<<"$e"
  paths "$name"
  run_step "$name" "$host" "enroll this node's agent through its own membershipd" "$(enroll_steps "$name" "$public" "$wg")"
  run_step "$name" "$host" "start the agent" "$(start_steps agent)"
done
# Where the hint is printed: in netns mode only the namespaces reach the nodes' addresses.
if [ "$apply" = 1 ]; then
  via=""
  if [ "$transport" = netns ]; then via="ip netns exec ${netns_prefix}${first} "; fi
  echo "deployed: ${#selected[@]} node(s). Next, from here:"
  if [ "$ROUTE_NETWORK" = wg ] && [ "$transport" = ssh ]; then
    # /healthz is on the WG_IPs, which only the mesh reaches: from a node.
    urls=""
    for e in "${CLUSTER_NODES[@]}"; do read -r _ _ _ w <<<"$e"; urls="${urls:+$urls,}http://$w:$HTTP_PORT"; done
    echo "  ssh $SSH_USER@$first_host $APP/bin/unibus monitor report --url $urls   # the WG_IPs are the mesh's alone"
  else
    echo "  ${via}$repo/bin/unibus monitor report --env $env_file"
  fi
  echo "  ${via}$repo/bin/unibus --data-dir $secrets/identities --server $(client_url "$first_public") cluster status"
fi
