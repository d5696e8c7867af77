// What a vault-mode node keeps on its own disk: `vault.json` (its name and the key's commitment,
// which reveal nothing of the key) and `secrets.enc`, its secret store encrypted under the data
// key (XChaCha20-Poly1305, bound to the node's name). The data key itself is never written: it
// exists only in memory, rebuilt from the guardians' shares, for as long as one use takes.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { Commitment, CurvePublicKey, GenesisKdf, Slug } from "../../../schemas/mod.ts";
import { decryptWith, encryptWith } from "../../core/mod.ts";
import { replaceSecretFile } from "../../bus/mod.ts";

export const VAULT_FILES = { vault: "vault.json", store: "secrets.enc", genesis: "genesis.key" } as const;

/** `genesis`: the key is still kept under the operator's key (genesis.key), not yet by peers. */
export const VaultFile = z
  .object({
    v: z.literal(1),
    owner: Slug,
    commitment: Commitment,
    created_at: z.string(),
    genesis: z.boolean().default(false),
  })
  .strict();
/**
 * genesis.key: the data key sealed to the operator's X25519 (curve nkey) public key, and when that
 * key derives from a passphrase, the KDF and salt to derive it again (public, like the key).
 */
export const GenesisFile = z
  .object({ v: z.literal(1), operator: CurvePublicKey, sealed: z.string(), kdf: GenesisKdf.nullable().default(null) })
  .strict();
export type GenesisFile = z.infer<typeof GenesisFile>;
export type VaultFile = z.infer<typeof VaultFile>;

const StoreFile = z.object({ v: z.literal(1), nonce: z.string(), box: z.string() }).strict();
const Secrets = z.record(z.string().max(128), z.string().max(65_536));
export type Secrets = z.infer<typeof Secrets>;

const storeContext = (owner: string) => `unibus.vault.store.v1:${owner}`;

export class VaultDisk {
  constructor(readonly dir: string) {}

  path(name: keyof typeof VAULT_FILES): string {
    return join(this.dir, VAULT_FILES[name]);
  }

  /** Vault mode: this node's key is split among its peers. */
  exists(): boolean {
    return existsSync(this.path("vault"));
  }

  read(): VaultFile {
    return VaultFile.parse(JSON.parse(readFileSync(this.path("vault"), "utf8")));
  }

  write(file: VaultFile): void {
    replaceSecretFile(
      this.path("vault"),
      new TextEncoder().encode(JSON.stringify(VaultFile.parse(file), null, 2) + "\n"),
    );
  }

  readGenesis(): GenesisFile {
    return GenesisFile.parse(JSON.parse(readFileSync(this.path("genesis"), "utf8")));
  }

  writeGenesis(file: GenesisFile): void {
    replaceSecretFile(this.path("genesis"), new TextEncoder().encode(JSON.stringify(GenesisFile.parse(file)) + "\n"));
  }

  deleteGenesis(): void {
    rmSync(this.path("genesis"), { force: true });
  }

  async writeStore(key: Uint8Array, owner: string, secrets: Secrets): Promise<void> {
    const plain = new TextEncoder().encode(JSON.stringify(Secrets.parse(secrets)));
    const sealed = await encryptWith(key, plain, storeContext(owner));
    plain.fill(0);
    replaceSecretFile(this.path("store"), new TextEncoder().encode(JSON.stringify({ v: 1, ...sealed }) + "\n"));
  }

  /** The secrets, or null when the key does not open the store. */
  async openStore(key: Uint8Array, owner: string): Promise<Secrets | null> {
    const file = StoreFile.parse(JSON.parse(readFileSync(this.path("store"), "utf8")));
    const plain = await decryptWith(key, file, storeContext(owner));
    if (!plain) return null;
    try {
      return Secrets.parse(JSON.parse(new TextDecoder().decode(plain)));
    } finally {
      plain.fill(0);
    }
  }
}
