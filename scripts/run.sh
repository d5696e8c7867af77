#!/usr/bin/env bash
# `make run`: the single-node control plane on this machine, in the foreground (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=${UNIBUS_DATA_DIR:-local_files}
http_port=${UNIBUS_HTTP_PORT:-8470}

bin/membershipd --data-dir "$data_dir" &
pid=$!
agent_pid=
trap 'kill -TERM $agent_pid $pid 2>/dev/null; wait $agent_pid $pid' INT TERM

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

# One example service, sandboxed when bubblewrap can run here (see docs/architecture.md).
if [ ! -d "$agent_dir/services" ]; then
  mkdir -p "$agent_dir/services" && chmod 700 "$agent_dir/services"
  profile=none
  if command -v bwrap >/dev/null && bwrap --ro-bind / / --unshare-user --unshare-uts true 2>/dev/null; then profile=bwrap; fi
  cat >"$agent_dir/services/hello.json" <<JSON
{
  "name": "hello",
  "command": "/bin/sh",
  "args": ["-c", "while true; do echo \"hello from \$(hostname) as uid \$(id -u)\"; sleep 10; done"],
  "restart": { "policy": "always" },
  "health_check": { "command": "/bin/true" },
  "sandbox": { "profile": "$profile" }
}
JSON
fi
node_name=$(bin/unibus-agent --data-dir "$agent_dir" --json status 2>/dev/null | node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).node??"")}catch{console.log("")}})')
if [ -n "$node_name" ]; then
  bin/unibus-agent --data-dir "$agent_dir" run &
  agent_pid=$!
fi

# One line of the list below, its comment in the same column as the others'.
try() { printf '  %-42s # %s' "$1" "$2"; }

cat <<MSG

unibus is running (data in ${data_dir}/, posture on http://127.0.0.1:${http_port}/healthz).
Try, in another terminal:

  bin/unibus node list                       # this machine's agent, enrolled with an invite
$(try "bin/unibus node status ${node_name:-<node>}" "its services, live from the agent")
$(try "bin/unibus node restart ${node_name:-<node>} hello" "a signed command; the restart is an event")
$(try "bin/unibus node logs ${node_name:-<node>} hello --lines 5" "what hello printed, from the UNIBUS_LOGS stream")
  bin/unibus node command all status         # fan out to every node (label selectors: role=web)
  bin/unibus node invite --note "web server" # a token for unibus-agent join on another node
  bin/unibus user add alice --role admin
  bin/unibus room create ops --subject "Operations"
  bin/unibus member add ops alice --role owner
  bin/unibus member list --room ops
  bin/unibus app status                      # signed apps on the nodes, desired beside running (README: Apps)
  bin/unibus events tail
  bin/unibus audit replay && bin/unibus audit verify
  curl -s http://127.0.0.1:${http_port}/healthz

Ctrl-C stops the agent (and its services), membershipd and its nats-server.
MSG
wait $pid
