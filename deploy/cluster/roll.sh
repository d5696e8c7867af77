# shellcheck shell=bash
# shellcheck disable=SC2154 # transport, repo, secrets, selected, apply, staging, discard_old: deploy-cluster.sh's
# The rolling operations of deploy-cluster.sh, one node at a time while the cluster serves. Sourced
# by deploy-cluster.sh, whose helpers (paths, stage, run_step, start_steps, healthy_steps, put_dir,
# node_addr, say) they use. docs/operations.md describes both.
#
#   --roll-certs   each node's TLS material from the secrets dir (client certificate chain and CA
#                  bundle, route certificate and route CA bundle) put in place and membershipd
#                  restarted: how each phase of a CA rotation (generate-cluster-certs.sh
#                  --rotate-cas) reaches the nodes.
#   --rekey-store  the same, and the node's JetStream store rebuilt under the key in
#                  secrets/nodes/NAME/at-rest.key.next: its store, at-rest key and key check move
#                  aside into DATA/membershipd/.rekey-old-<time>/ and membershipd starts on an empty
#                  store that its peers fill again (a store written without encryption becomes
#                  encrypted the same way). The secrets dir then holds the new key as at-rest.key;
#                  --discard-old overwrites and deletes the old store and keys once the node is whole.
#
# Before a node stops, `unibus cluster wait` proves its peers hold a current, complete copy of every
# stream (three replicas of each for a rekey) and that every active agent trusts the CA the node's
# certificate chain will present (an agent that did not could never connect again). After, it waits
# until the node's copies are current again before the next node goes.

# Runs on the node: membershipd stopped; for a rekey its store and key moved aside and the new key
# placed; the staged TLS material over the old; membershipd started by start_steps afterwards.
roll_node_steps() { # MODE: certs | rekey
  cat <<SH
set -euo pipefail
stage="\$1"
md="$DATA/membershipd"
if [ "$transport" = ssh ]; then
  systemctl stop unibus-membershipd
else
  pidfile="$RUN/membershipd.pid"
  if [ -f "\$pidfile" ] && kill -0 "\$(cat "\$pidfile")" 2>/dev/null; then
    pid=\$(cat "\$pidfile"); kill -TERM "\$pid"
    for _ in \$(seq 1 300); do kill -0 "\$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "\$pid" 2>/dev/null; then echo "membershipd (pid \$pid) did not stop within 60 s" >&2; exit 1; fi
  fi
fi
# A nats-server still holding the store would go on writing into it.
if [ -f "\$md/nats/nats-server.pid" ]; then
  npid=\$(cat "\$md/nats/nats-server.pid")
  for _ in \$(seq 1 150); do kill -0 "\$npid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "\$npid" 2>/dev/null && grep -q nats-server "/proc/\$npid/cmdline" 2>/dev/null; then
    echo "nats-server (pid \$npid) still runs on \$md/nats; stop it first" >&2; exit 1
  fi
fi
if [ "$1" = rekey ]; then
  old="\$md/.rekey-old-\$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -m 700 "\$old"
  [ -d "\$md/nats" ] && mv "\$md/nats" "\$old/"
  [ -f "\$md/at-rest.check" ] && mv "\$md/at-rest.check" "\$old/"
  [ -f "$ETC/at-rest.key" ] && mv "$ETC/at-rest.key" "\$old/"
  install -m 600 "\$stage/rekey/at-rest.key" "$ETC/at-rest.key.new" && mv "$ETC/at-rest.key.new" "$ETC/at-rest.key"
  echo "old store and key moved aside to \$old"
fi
cp -a "\$stage/data/tls/." "\$md/tls/"
cp -a "\$stage/etc/route/." "$ETC/route/"
if [ "$transport" = ssh ]; then
  chown -R "$CLUSTER_USER:$CLUSTER_USER" "\$md/tls" "$ETC/route"
  if [ -f "$ETC/at-rest.key" ]; then chown "$CLUSTER_USER:$CLUSTER_USER" "$ETC/at-rest.key"; fi
  rm -rf "\$stage"
fi
SH
}

# Runs on the node: the old stores and keys overwritten with zeros, then removed.
discard_old_steps() {
  cat <<SH
set -euo pipefail
for d in "$DATA/membershipd"/.rekey-old-*; do
  [ -d "\$d" ] || continue
  find "\$d" -type f -exec shred -u -z -n 1 {} +
  rm -rf "\$d"
  echo "discarded \$d"
done
SH
}

# The SHA-256 fingerprint (lowercase hex) of the CA a chain file presents: its last certificate.
presented_ca() { # CHAIN
  awk '/BEGIN CERTIFICATE/{buf=""} {buf=buf $0 "\n"} /END CERTIFICATE/{last=buf} END{printf "%s", last}' "$1" |
    openssl x509 -noout -fingerprint -sha256 | sed 's/^.*=//; s/://g' | tr 'A-F' 'a-f'
}

# After a node's rekey: the secrets dir follows it, and the old material goes if asked.
rekey_bookkeeping() { # NAME HOST M
  local retired
  retired="$3/at-rest.key.retired-$(date -u +%Y%m%dT%H%M%SZ)"
  [ -f "$3/at-rest.key" ] && mv "$3/at-rest.key" "$retired"
  mv "$3/at-rest.key.next" "$3/at-rest.key"
  if [ "$discard_old" = 1 ]; then
    run_step "$1" "$2" "overwrite and remove the old store and key" "$(discard_old_steps)"
    [ -f "$retired" ] && shred -u -z -n 1 "$retired"
  else
    say "$1" "the old store and key stay in $DATA/membershipd/.rekey-old-*; the old key here in $retired"
  fi
}

roll_cluster() { # MODE: certs | rekey
  local mode=$1 peers="" urls="" e n p replicas=1
  [ "$mode" = rekey ] && replicas=3
  for e in "${CLUSTER_NODES[@]}"; do
    read -r n _ p _ <<<"$e"
    peers="${peers:+$peers,}$n"
    urls="${urls:+$urls,}$(client_url "$p")"
  done
  cluster_wait() { # WITHIN [ARGS…]
    "$repo/bin/unibus" --data-dir "$secrets/identities" --server "$urls" cluster wait --replicas "$replicas" --peers "$peers" --within "$@"
  }
  for e in "${selected[@]}"; do
    read -r name host public wg <<<"$e"
    paths "$name"
    local m="$secrets/nodes/$name" addr ca what="restart membershipd on the node's TLS material"
    addr=$(node_addr "$name" "$host" "$public" "$wg")
    ca=$(presented_ca "$m/tls/server-chain.pem")
    if [ "$mode" = rekey ]; then
      [ -f "$m/at-rest.vault" ] && { echo "deploy-cluster.sh: node $name keeps its at-rest key in its vault; --rekey-store does not rotate vault-held keys" >&2; exit 1; }
      [ -f "$m/at-rest.key.next" ] || { say "$name" "no next at-rest key ($m/at-rest.key.next): already rekeyed, skipped"; continue; }
      what="move its store and at-rest key aside, restart membershipd on an empty store under at-rest.key.next"
    fi
    if [ "$apply" = 0 ]; then
      say "$name" "would wait until the cluster is whole and every agent trusts CA ${ca:0:16}…, then $what, and wait until its copies are current again"
      continue
    fi
    say "$name" "check that its peers hold everything and every agent trusts the CA its chain presents (${ca:0:16}…)"
    cluster_wait 5m --agents-trust "$ca" || { echo "deploy-cluster.sh: not safe to stop $name now; it is left as it is" >&2; exit 1; }
    stage "$name" "$addr" "$staging/$name" "$public"
    if [ "$mode" = rekey ]; then (umask 077; mkdir -p "$staging/$name/rekey" && cp "$m/at-rest.key.next" "$staging/$name/rekey/at-rest.key"); fi
    local stage_dir="$staging/$name"
    if [ "$transport" = ssh ]; then
      put_dir "$name" "$host" "$staging/$name" "/tmp/unibus-roll-stage"
      stage_dir=/tmp/unibus-roll-stage
    fi
    run_step "$name" "$host" "stop membershipd; $what" "$(roll_node_steps "$mode")" "$stage_dir"
    run_step "$name" "$host" "start membershipd" "$(start_steps membershipd)"
    run_step "$name" "$host" "wait for /healthz" "$(healthy_steps "$addr")"
    say "$name" "wait until its copy of every stream is current again"
    cluster_wait 10m || { echo "deploy-cluster.sh: $name did not catch up; see its membershipd log" >&2; exit 1; }
    if [ "$mode" = rekey ]; then rekey_bookkeeping "$name" "$host" "$m"; fi
  done
  say local "every selected node is done ($mode)"
}
