# shellcheck shell=bash
# The network `deploy-cluster.sh --transport netns` deploys into, made on this machine: per node of
# cluster.env a network namespace <prefix><NAME> whose eth0 holds the node's PUBLIC_IP (/24), and
# its WG_IP too unless ROUTE_NETWORK=wg (then the WG_IP is the mesh interface's alone, which
# deploy-cluster.sh brings up: routes really cross WireGuard), and a veth from it into one bridge, <prefix>br. The bridge has no address, so every node
# address lives only inside the namespaces made here; the host reaches them with `ip netns exec`.
# Source this file; it runs nothing by itself. Both functions are idempotent, and with APPLY=0
# print the exact commands they would run instead of running them.

# Prints a step on its own line, the way deploy-cluster.sh does.
netns_say() { printf '[%s] %s\n' "$1" "$2"; }

# Runs a command (APPLY=1) or says it would (APPLY=0); either way the command is printed.
netns_run() { # APPLY WHO CMD...
  local apply=$1 who=$2
  shift 2
  if [ "$apply" = 1 ]; then
    netns_say "$who" "$*"
    "$@"
  else
    netns_say "$who" "would run: $*"
  fi
}

netns_exists() { ip netns list | awk '{print $1}' | grep -qxF -- "$1"; }

# Interface names are at most 15 characters: <prefix>br and <prefix>v<index> must fit.
netns_names_fit() { # PREFIX NODE_COUNT
  local longest="${1}v$(($2 - 1))"
  if [ ${#longest} -gt 15 ] || [ ${#1} -gt 13 ]; then
    echo "deploy-cluster.sh: --netns-prefix $1 is too long for interface names (at most 15 characters: ${longest})" >&2
    return 2
  fi
}

# One node's namespace, veth and addresses. A failure leaves no half-made namespace behind.
netns_make() { # APPLY PREFIX BRIDGE VETH NAME PUBLIC WG
  local apply=$1 ns="$2$5" bridge=$3 veth=$4 name=$5 public=$6 wg=$7
  if ! {
    netns_run "$apply" "$name" ip netns add "$ns" &&
      netns_run "$apply" "$name" ip link add "$veth" type veth peer name eth0 netns "$ns" &&
      netns_run "$apply" "$name" ip link set "$veth" master "$bridge" up &&
      netns_run "$apply" "$name" ip -n "$ns" link set lo up &&
      netns_run "$apply" "$name" ip -n "$ns" addr add "$public/24" dev eth0 &&
      { [ "$wg" = "$public" ] || [ "${ROUTE_NETWORK:-}" = wg ] || netns_run "$apply" "$name" ip -n "$ns" addr add "$wg/24" dev eth0; } &&
      netns_run "$apply" "$name" ip -n "$ns" link set eth0 up
  }; then
    ip netns del "$ns" 2>/dev/null || true
    echo "deploy-cluster.sh: could not make the network namespace $ns (see above); nothing of it is left" >&2
    return 1
  fi
}

# netns_up APPLY PREFIX ONLY NODE_LINE...: makes every missing namespace of the NODE_LINEs
# (cluster.env's "NAME SSH_HOST PUBLIC_IP WG_IP"; only the one named ONLY when it is not empty),
# and the bridge when it is missing. A namespace that exists is used as it is. The veth of the
# i-th line is <prefix>v<i>, whichever nodes are selected.
netns_up() {
  local apply=$1 prefix=$2 only=$3 bridge="${2}br" i=0 bridge_made=0 line name _host public wg
  shift 3
  netns_names_fit "$prefix" $# || return 2
  for line in "$@"; do
    read -r name _host public wg <<<"$line"
    i=$((i + 1))
    if [ -n "$only" ] && [ "$only" != "$name" ]; then continue; fi
    if netns_exists "$prefix$name"; then
      netns_say "$name" "network namespace $prefix$name exists: used as it is"
      continue
    fi
    if [ "$bridge_made" = 1 ]; then
      :
    elif ip link show "$bridge" >/dev/null 2>&1; then
      netns_say network "bridge $bridge exists: used as it is"
    else
      netns_run "$apply" network ip link add "$bridge" type bridge || return 1
      netns_run "$apply" network ip link set "$bridge" up || return 1
    fi
    bridge_made=1
    netns_make "$apply" "$prefix" "$bridge" "${prefix}v$((i - 1))" "$name" "$public" "$wg" || return 1
  done
}

# Stops every process in one namespace: TERM, up to 10 s to exit, then KILL.
netns_stop() { # APPLY NS NAME
  local apply=$1 ns=$2 name=$3 pids
  pids=$(ip netns pids "$ns" | tr '\n' ' ')
  [ -n "${pids// /}" ] || return 0
  # shellcheck disable=SC2086 # one argument per pid
  netns_run "$apply" "$name" kill -TERM $pids || true
  [ "$apply" = 1 ] || return 0
  for _ in $(seq 1 50); do
    [ -z "$(ip netns pids "$ns")" ] && return 0
    sleep 0.2
  done
  pids=$(ip netns pids "$ns" | tr '\n' ' ')
  # shellcheck disable=SC2086 # one argument per pid
  [ -z "${pids// /}" ] || netns_run "$apply" "$name" kill -KILL $pids || true
}

# netns_down APPLY PREFIX ONLY NODE_LINE...: stops what runs in each selected namespace and
# removes it (its veth goes with it), then the bridge once no namespace is attached to it.
netns_down() {
  local apply=$1 prefix=$2 only=$3 bridge="${2}br" line name ports
  shift 3
  for line in "$@"; do
    read -r name _ <<<"$line"
    if [ -n "$only" ] && [ "$only" != "$name" ]; then continue; fi
    if ! netns_exists "$prefix$name"; then
      netns_say "$name" "no network namespace $prefix$name: nothing to remove"
      continue
    fi
    netns_stop "$apply" "$prefix$name" "$name"
    netns_run "$apply" "$name" ip netns del "$prefix$name" || return 1
  done
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    netns_say network "no bridge $bridge: nothing to remove"
    return 0
  fi
  if [ "$apply" = 0 ]; then
    netns_say network "would run: ip link del $bridge (once no namespace is attached to it)"
    return 0
  fi
  # A namespace's veth goes when the kernel has finished taking the namespace down, a moment later.
  for _ in $(seq 1 25); do
    ports=$(find "/sys/class/net/$bridge/brif" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    [ "$ports" -eq 0 ] && break
    sleep 0.2
  done
  if [ "$ports" -eq 0 ]; then
    netns_run 1 network ip link del "$bridge"
  else
    netns_say network "bridge $bridge kept: $ports namespace(s) still attached"
  fi
}
