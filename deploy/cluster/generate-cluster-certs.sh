#!/usr/bin/env bash
# Makes everything a cluster's nodes need to trust each other, with openssl, into a directory git
# ignores (deploy/cluster/secrets/ unless --out):
#   client-ca/        the CA clients and agents trust (its fingerprint goes into every invite)
#   route-ca/         a separate CA for the routes between servers (mutual TLS)
#   route.secret      the routes' shared secret
#   identities/       the NATS operator and account keys (auth/), service.nk and admin.nk, the client
#                     CA (tls/ca.pem); deploy-cluster.sh adds admin.creds: `unibus --data-dir` it
#   nodes/NAME/       per node: tls/ (server certificate for clients), route/ (route certificate),
#                     at-rest.key (its JetStream at-rest key)
# Keys are 0600. A rerun keeps every existing key and certificate and only adds what is missing;
# --rotate issues new server and route keys and certificates for every node under the same CAs
# (CAs, identities and the route secret are never rotated here: see docs/operations.md).
# --next-at-rest-keys makes each node a new at-rest key, nodes/NAME/at-rest.key.next, that
# `deploy-cluster.sh --rekey-store` puts in place node by node (an existing .next is kept).
# --rotate-cas begin|switch|finish replaces both CAs with an overlap (each phase followed by
# `deploy-cluster.sh --roll-certs --apply`): begin makes client-ca.next/ and route-ca.next/ and
# has every node and client trust old and new; switch issues every node's certificates from the
# new CAs; finish retires the old CAs (client-ca.retired-<time>/) and trusts the new ones alone.
# --next-signing-key makes the account signing key a rotation switches to (identities/auth/); deploy
# it (deploy-cluster.sh --apply) before `unibus account rotate-signing-key --key A…`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"

env_file="$here/cluster.env" out="$here/secrets" rotate=0 next_keys=0 ca_phase=
while [ $# -gt 0 ]; do
  case "$1" in
    --env) env_file=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --rotate) rotate=1; shift ;;
    --next-at-rest-keys) next_keys=1; shift ;;
    --rotate-cas) ca_phase=$2; shift 2 ;;
    --next-signing-key) next_signing=--next-signing-key; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "generate-cluster-certs.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$ca_phase" in ""|begin|switch|finish) ;; *) echo "generate-cluster-certs.sh: --rotate-cas is begin, switch or finish, not $ca_phase" >&2; exit 2 ;; esac
require_no_placeholders "$env_file"
# shellcheck disable=SC1090
source "$env_file"
command -v openssl >/dev/null || { echo "generate-cluster-certs.sh: openssl is not installed (apt-get install openssl)" >&2; exit 1; }
umask 077
mkdir -p "$out"
# Absolute: the identities are written from the repository's directory (scripts/cluster-keys.ts).
out="$(cd "$out" && pwd)"

quiet() { "$@" 2>/dev/null >/dev/null || { echo "generate-cluster-certs.sh: failed: $*" >&2; "$@" >&2; exit 1; }; }

make_ca() { # DIR CN
  [ -f "$1/ca.pem" ] && return
  mkdir -p "$1"
  quiet openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$1/ca.key" -out "$1/ca.pem" \
    -days 3650 -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  echo "made $2 ($1/ca.pem)"
}

issue() { # CA_DIR KEY CERT CN SAN
  local ca=$1 key=$2 cert=$3 cn=$4 san=$5 ext
  # A certificate is kept unless --rotate, or a CA switch finds it issued by another CA.
  if [ -f "$cert" ] && [ "$rotate" = 0 ] && openssl verify -CAfile "$ca/ca.pem" "$cert" >/dev/null 2>&1; then return; fi
  ext=$(mktemp)
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n' "$san" >"$ext"
  quiet openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$key.new" -out "$key.csr" -subj "/CN=$cn"
  quiet openssl x509 -req -in "$key.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca.key" -CAcreateserial -out "$cert.new" -days 825 -extfile "$ext"
  mv "$key.new" "$key" && mv "$cert.new" "$cert" && rm -f "$key.csr" "$ext"
  chmod 600 "$key"
}

make_ca "$out/client-ca" "unibus $CLUSTER_NAME client CA"
make_ca "$out/route-ca" "unibus $CLUSTER_NAME route CA"
if [ ! -f "$out/route.secret" ]; then
  openssl rand -hex 32 >"$out/route.secret"
  echo "made the route secret ($out/route.secret)"
fi

# The CA rotation's phases (docs/operations.md, "Rotating the CAs"). Between begin and finish the
# .next CAs exist and every trust file holds both; from switch on the certificates come from .next.
stamp=$(date -u +%Y%m%dT%H%M%SZ)
case "$ca_phase" in
  begin)
    make_ca "$out/client-ca.next" "unibus $CLUSTER_NAME client CA $stamp"
    make_ca "$out/route-ca.next" "unibus $CLUSTER_NAME route CA $stamp" ;;
  switch|finish)
    for c in client-ca route-ca; do
      [ -f "$out/$c.next/ca.pem" ] || { echo "generate-cluster-certs.sh: no $c.next; run --rotate-cas begin (and deploy) first" >&2; exit 1; }
    done ;;
esac
if [ "$ca_phase" = finish ]; then
  for entry in "${CLUSTER_NODES[@]}"; do
    read -r name _ <<<"$entry"
    for pair in "tls/server.pem client-ca" "route/route.pem route-ca"; do
      read -r cert c <<<"$pair"
      openssl verify -CAfile "$out/$c.next/ca.pem" "$out/nodes/$name/$cert" >/dev/null 2>&1 ||
        { echo "generate-cluster-certs.sh: node $name's $cert is not from $c.next yet; run --rotate-cas switch and deploy --roll-certs first" >&2; exit 1; }
    done
  done
  for c in client-ca route-ca; do
    mv "$out/$c" "$out/$c.retired-$stamp" && mv "$out/$c.next" "$out/$c"
    echo "retired the old $c ($out/$c.retired-$stamp); $c is the new one"
  done
fi
# Which CA issues the nodes' certificates, and the bundles every trust file gets (the issuing CA first).
issuer() { if [ -d "$out/$1.next" ] && [ "$ca_phase" != begin ] && { [ "$ca_phase" = switch ] || issued_by_next "$1"; }; then echo "$out/$1.next"; else echo "$out/$1"; fi; }
issued_by_next() { # CA: whether the first node's certificate already comes from CA.next (a rerun after switch)
  local first cert
  read -r first _ <<<"${CLUSTER_NODES[0]}"
  cert="$out/nodes/$first/$([ "$1" = client-ca ] && echo tls/server.pem || echo route/route.pem)"
  [ -f "$cert" ] && openssl verify -CAfile "$out/$1.next/ca.pem" "$cert" >/dev/null 2>&1
}
bundle() { # CA: the issuing CA's certificate, then the other one while a rotation runs
  local from other
  from=$(issuer "$1")
  cat "$from/ca.pem"
  if [ -d "$out/$1.next" ]; then
    other="$out/$1"; [ "$from" = "$out/$1" ] && other="$out/$1.next"
    cat "$other/ca.pem"
  fi
}
client_issuer=$(issuer client-ca) route_issuer=$(issuer route-ca)
mkdir -p "$out/identities/tls" && bundle client-ca >"$out/identities/tls/ca.pem"   # so --data-dir identities finds the CA
(cd "$root" && node --import "file://$root/node_modules/tsx/dist/loader.mjs" scripts/cluster-keys.ts "$out/identities" ${next_signing:+"$next_signing"}) | sed 's/^/identity: /'

for entry in "${CLUSTER_NODES[@]}"; do
  read -r name _ssh public wg <<<"$entry"
  dir="$out/nodes/$name"
  mkdir -p "$dir/tls" "$dir/route"
  san="DNS:$name,DNS:localhost,IP:127.0.0.1,IP:$public,IP:$wg"
  issue "$client_issuer" "$dir/tls/server.key" "$dir/tls/server.pem" "$name" "$san"
  cat "$dir/tls/server.pem" "$client_issuer/ca.pem" >"$dir/tls/server-chain.pem"
  bundle client-ca >"$dir/tls/ca.pem"
  issue "$route_issuer" "$dir/route/route.key" "$dir/route/route.pem" "$name" "DNS:$name,IP:$public,IP:$wg"
  bundle route-ca >"$dir/route/route-ca.pem"
  # A node in vault mode (at-rest.vault) has no key file any more: making a new one would be wrong.
  if [ ! -f "$dir/at-rest.key" ] && [ ! -f "$dir/at-rest.vault" ]; then openssl rand -hex 32 >"$dir/at-rest.key"; fi
  [ -f "$dir/at-rest.key" ] && chmod 600 "$dir/at-rest.key"
  if [ "$next_keys" = 1 ] && [ ! -f "$dir/at-rest.key.next" ]; then
    [ -f "$dir/at-rest.vault" ] && { echo "generate-cluster-certs.sh: node $name keeps its key in its vault; a new at-rest key for it is not made here" >&2; exit 1; }
    openssl rand -hex 32 >"$dir/at-rest.key.next" && chmod 600 "$dir/at-rest.key.next"
    echo "node $name: next at-rest key ($dir/at-rest.key.next; deploy-cluster.sh --rekey-store puts it in place)"
  fi
  chmod 600 "$dir/tls/server.key" "$dir/route/route.key"
  echo "node $name: server and route certificates ($san), at-rest key"
done
echo "cluster material in $out (keep it off git; deploy-cluster.sh copies each node's part)"
