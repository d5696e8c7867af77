# shellcheck shell=bash
# shellcheck disable=SC2154 # transport, repo, secrets, selected, apply, staging, discard_old: deploy-cluster.sh's
# deploy-cluster.sh --rekey-store: every node's JetStream store rebuilt under a new at-rest key, one
# node at a time, through R3 replication, while the cluster serves. Sourced by deploy-cluster.sh,
# whose helpers (paths, run_step, start_steps, healthy_steps, put_dir, node_addr, say) it uses.
#
# Per node: `unibus cluster wait` first proves both peers hold a current, complete copy of every
# stream (three replicas of each); then the node's membershipd stops, its store, at-rest key and key
# check move aside into DATA/membershipd/.rekey-old-<time>/, the key from
# secrets/nodes/NAME/at-rest.key.next takes their place, and membershipd starts on an empty store
# that its peers fill again (the same way a store written without encryption becomes encrypted).
# Only once `cluster wait` sees the node's copies current again does the next node go; the
# secrets dir then holds the new key as at-rest.key. --discard-old overwrites and deletes the old
# store and key on the node (and the old key here) once the node is whole again.

# Runs on the node: stop membershipd (and with it its nats-server), move the store aside, place the key.
rekey_node_steps() {
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
# A nats-server still holding the store would go on writing into the directory being moved.
if [ -f "\$md/nats/nats-server.pid" ]; then
  npid=\$(cat "\$md/nats/nats-server.pid")
  for _ in \$(seq 1 150); do kill -0 "\$npid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "\$npid" 2>/dev/null && grep -q nats-server "/proc/\$npid/cmdline" 2>/dev/null; then
    echo "nats-server (pid \$npid) still runs on \$md/nats; stop it first" >&2; exit 1
  fi
fi
old="\$md/.rekey-old-\$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -m 700 "\$old"
[ -d "\$md/nats" ] && mv "\$md/nats" "\$old/"
[ -f "\$md/at-rest.check" ] && mv "\$md/at-rest.check" "\$old/"
[ -f "$ETC/at-rest.key" ] && mv "$ETC/at-rest.key" "\$old/"
install -m 600 "\$stage/at-rest.key" "$ETC/at-rest.key.new" && mv "$ETC/at-rest.key.new" "$ETC/at-rest.key"
if [ "$transport" = ssh ]; then
  chown "$CLUSTER_USER:$CLUSTER_USER" "$ETC/at-rest.key"
  rm -rf "\$stage"
fi
echo "old store and key moved aside to \$old"
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

rekey_cluster() {
  local peers="" urls="" e n h p w
  for e in "${CLUSTER_NODES[@]}"; do
    read -r n h p w <<<"$e"
    peers="${peers:+$peers,}$n"
    urls="${urls:+$urls,}nats://$(node_addr "$n" "$h" "$p" "$w"):$NATS_CLIENT_PORT"
  done
  cluster_wait() { # WITHIN
    "$repo/bin/unibus" --data-dir "$secrets/identities" --server "$urls" cluster wait --replicas 3 --peers "$peers" --within "$1"
  }
  for e in "${selected[@]}"; do
    read -r name host public wg <<<"$e"
    paths "$name"
    local m="$secrets/nodes/$name"
    if [ -f "$m/at-rest.vault" ]; then
      echo "deploy-cluster.sh: node $name keeps its at-rest key in its vault; --rekey-store does not rotate vault-held keys" >&2
      exit 1
    fi
    if [ ! -f "$m/at-rest.key.next" ]; then
      say "$name" "no next at-rest key ($m/at-rest.key.next): already rekeyed, skipped"
      continue
    fi
    if [ "$apply" = 0 ]; then
      say "$name" "would wait for the cluster to be whole, stop membershipd, move its store and key aside, start it with at-rest.key.next and wait until its copies are current again"
      continue
    fi
    say "$name" "check that both peers hold a current, complete copy of every stream"
    cluster_wait 2m || { echo "deploy-cluster.sh: the cluster is not whole; $name's store is left as it is" >&2; exit 1; }
    (umask 077; mkdir -p "$staging/rekey-$name" && cp "$m/at-rest.key.next" "$staging/rekey-$name/at-rest.key")
    local stage_dir="$staging/rekey-$name"
    if [ "$transport" = ssh ]; then
      put_dir "$name" "$host" "$staging/rekey-$name" "/tmp/unibus-rekey-stage"
      stage_dir=/tmp/unibus-rekey-stage
    fi
    run_step "$name" "$host" "stop membershipd, move its store and at-rest key aside, place the new key" "$(rekey_node_steps)" "$stage_dir"
    run_step "$name" "$host" "start membershipd on an empty store under the new key" "$(start_steps membershipd)"
    run_step "$name" "$host" "wait for /healthz" "$(healthy_steps "$(node_addr "$name" "$host" "$public" "$wg")")"
    say "$name" "wait until its copy of every stream is current again"
    cluster_wait 10m || { echo "deploy-cluster.sh: $name did not catch up; its old store is in $DATA/membershipd/.rekey-old-*" >&2; exit 1; }
    # The secrets dir follows the node: the new key is its key now.
    local retired
    retired="$m/at-rest.key.retired-$(date -u +%Y%m%dT%H%M%SZ)"
    [ -f "$m/at-rest.key" ] && mv "$m/at-rest.key" "$retired"
    mv "$m/at-rest.key.next" "$m/at-rest.key"
    if [ "$discard_old" = 1 ]; then
      run_step "$name" "$host" "overwrite and remove the old store and key" "$(discard_old_steps)"
      [ -f "$retired" ] && shred -u -z -n 1 "$retired"
    else
      say "$name" "the old store and key stay in $DATA/membershipd/.rekey-old-*; the old key here in $retired"
    fi
  done
  say local "every selected node runs on its new at-rest key"
}
