#!/usr/bin/env bash
# `make run`: the single-node control plane on this machine, in the foreground (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=${UNIBUS_DATA_DIR:-local_files}
http_port=${UNIBUS_HTTP_PORT:-8470}

bin/membershipd --data-dir "$data_dir" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid' INT TERM

for _ in $(seq 1 150); do
  if node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "http://127.0.0.1:${http_port}/healthz"; then break; fi
  if ! kill -0 $pid 2>/dev/null; then wait $pid; exit $?; fi
  sleep 0.2
done

# This machine's agent joins the fleet once, with an invite made for it.
agent_dir="$data_dir/agent"
if ! bin/unibus-agent --data-dir "$agent_dir" status >/dev/null 2>&1; then
  bin/unibus --data-dir "$data_dir" node invite --note "make run: this machine" | head -1 |
    bin/unibus-agent --data-dir "$agent_dir" join --token - || echo "unibus: this machine's agent did not enroll (see above)" >&2
fi

cat <<MSG

unibus is running (data in ${data_dir}/, posture on http://127.0.0.1:${http_port}/healthz).
Try, in another terminal:

  bin/unibus node list                       # this machine's agent, enrolled with an invite
  bin/unibus node invite --note "web server" # a token for unibus-agent join on another node
  bin/unibus user add alice --role admin
  bin/unibus room create ops --subject "Operations"
  bin/unibus member add ops alice --role owner
  bin/unibus member list --room ops
  bin/unibus events tail
  bin/unibus audit replay && bin/unibus audit verify
  curl -s http://127.0.0.1:${http_port}/healthz

Ctrl-C stops membershipd and its nats-server.
MSG
wait $pid
