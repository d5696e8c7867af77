// The embedded server's security material, made on first start into the data dir: operator and
// account keys (auth/), the cluster CA and server certificate (tls/), and the credentials
// membershipd itself connects with (the service user, and the system user that pushes revocations).
import { join } from "node:path";
import { OperatorAuth, credsFromSeedFile, ensureTlsMaterial, type TlsMaterial } from "../bus/mod.ts";
import { permissionsFor } from "../core/mod.ts";
import { SERVICE_SEED_FILE, serviceSigner } from "./identities.ts";

export interface SecurityMaterial {
  auth: OperatorAuth;
  tls: TlsMaterial;
  serviceCreds: Uint8Array;
  /** The service creds as they are now: minted again when the account signing key is rotated. */
  currentServiceCreds: () => Uint8Array;
  systemCreds: Uint8Array;
  /** The server config lines for operator mode with a full resolver. */
  serverAuthConfig: string;
}

/** `names`: the DNS names and IPs clients reach this server by, for its certificate. */
export async function prepareSecurity(dataDir: string, serverName: string, names: string[]): Promise<SecurityMaterial> {
  const auth = new OperatorAuth(join(dataDir, "auth"));
  const tls = ensureTlsMaterial(join(dataDir, "tls"), serverName, names);
  const service = serviceSigner(dataDir);
  const mint = async () =>
    credsFromSeedFile(
      await auth.userJwt({
        name: "membershipd",
        key: service.publicKey,
        permissions: permissionsFor("service", { key: service.publicKey }),
      }),
      join(dataDir, SERVICE_SEED_FILE),
    );
  const serviceCreds = await mint();
  let current = serviceCreds;
  // The connection reads these at each (re)connect: after a rotation it comes back with the new key's JWT.
  auth.onMintingKeyChange(async () => {
    current = await mint();
  });
  return {
    auth,
    tls,
    serviceCreds,
    currentServiceCreds: () => current,
    systemCreds: await auth.systemUserCreds(),
    serverAuthConfig: await auth.serverConfig(join(dataDir, "nats", "resolver")),
  };
}

/** Host names and IPs in URLs like nats://host:4250. */
export function hostsOf(urls: string[]): string[] {
  return urls.map((u) => new URL(u).hostname.replace(/^\[|\]$/g, ""));
}
