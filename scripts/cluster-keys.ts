// The cluster's shared identities, for generate-cluster-certs.sh: the NATS operator, its system
// and UNIBUS accounts (auth/), and the keys every membershipd of one cluster shares (service.nk,
// the writer key the genesis event trusts, and admin.nk, the bootstrap admin). Existing seeds are
// kept: a rerun never changes who the cluster trusts. Usage: cluster-keys.ts OUT_DIR [--next-signing-key]
// --next-signing-key makes the account signing key a rotation will switch to (its seed in auth/,
// named in auth/account-signing.next; a rerun names the same one until it is listed).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OperatorAuth } from "../services/bus/mod.ts";
import { ADMIN_SEED_FILE, SERVICE_SEED_FILE, loadOrCreateSigner } from "../services/membershipd/identities.ts";

const out = process.argv[2];
if (!out) {
  process.stderr.write("usage: cluster-keys.ts OUT_DIR\n");
  process.exit(2);
}
const auth = new OperatorAuth(join(out, "auth"));
const service = loadOrCreateSigner(join(out, SERVICE_SEED_FILE));
const admin = loadOrCreateSigner(join(out, ADMIN_SEED_FILE));
process.stdout.write(
  `operator ${auth.operator.publicKey}\nservice  ${service.publicKey}\nadmin    ${admin.publicKey}\n`,
);
if (process.argv[3] === "--next-signing-key") {
  const marker = join(out, "auth", "account-signing.next");
  const named = existsSync(marker) ? readFileSync(marker, "utf8").trim() : null;
  const next = (named && auth.signingKey(named)) || auth.newSigningKey();
  writeFileSync(marker, `${next.publicKey}\n`, { mode: 0o600 });
  process.stdout.write(
    `next account signing key ${next.publicKey} (rotate to it: unibus account rotate-signing-key --key ${next.publicKey})\n`,
  );
}
