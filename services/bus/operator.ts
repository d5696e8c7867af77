// NATS operator mode: an operator key, the system account and the UNIBUS account, whose signing
// key mints one user JWT per identity. Seeds live in DATA_DIR/auth/ (0600). JWTs are signed with
// node:crypto through a KeyPair-shaped adapter (nkeys' own Ed25519 is ~300x slower).
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createAccount, createOperator, createUser, type KeyPair } from "@nats-io/nkeys";
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import { signerFromSeed, type Signer, type SubjectPermissions } from "../core/mod.ts";
import { readSecretFile, writeSecretFile } from "./secret-file.ts";

export const ACCOUNT_NAME = "UNIBUS";

const UNLIMITED = { subs: -1, conn: -1, leaf: -1, imports: -1, exports: -1, data: -1, payload: -1, wildcards: true };
const JETSTREAM_UNLIMITED = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };

/** The KeyPair shape @nats-io/jwt signs with, backed by a native signer. */
export function jwtKeyPair(signer: Signer): KeyPair {
  return {
    getPublicKey: () => signer.publicKey,
    getPrivateKey: () => new Uint8Array(0),
    sign: (data: Uint8Array) => signer.sign(data),
  } as unknown as KeyPair;
}

function loadOrCreateSeed(path: string, create: () => KeyPair): Signer {
  if (!existsSync(path)) {
    const seed = create().getSeed();
    writeSecretFile(path, Buffer.concat([Buffer.from(seed), Buffer.from("\n")]));
    seed.fill(0);
  }
  const buf = readSecretFile(path);
  try {
    return signerFromSeed(buf.toString("utf8").trim());
  } finally {
    buf.fill(0);
  }
}

export interface UserJwtOptions {
  name: string;
  key: string;
  permissions: SubjectPermissions;
  expiresAt?: Date | null;
}

/** The first account signing key; later ones (rotations) are `account-signing-<public key>.nk`. */
const FIRST_SIGNING_SEED = "account-signing.nk";
/** The public key of the signing key that mints now, once a rotation made another one. */
const MINTING_KEY_FILE = "account-signing.current";

export class OperatorAuth {
  readonly operator: Signer;
  readonly systemAccount: Signer;
  readonly account: Signer;
  readonly firstSigning: Signer;
  /** The signing key every user JWT is minted with now (rotated: membershipd/signing-keys). */
  accountSigning: Signer;
  /** Every signing key the account JWT lists: JWTs signed by any of them verify. */
  signingKeys: string[];
  readonly systemUser: Signer;
  private readonly accountJwtPath: string;
  private readonly mintingKeyListeners: Array<() => Promise<void>> = [];

  constructor(readonly dir: string) {
    this.operator = loadOrCreateSeed(join(dir, "operator.nk"), createOperator);
    this.systemAccount = loadOrCreateSeed(join(dir, "system-account.nk"), createAccount);
    this.account = loadOrCreateSeed(join(dir, "account.nk"), createAccount);
    this.firstSigning = loadOrCreateSeed(join(dir, FIRST_SIGNING_SEED), createAccount);
    this.systemUser = loadOrCreateSeed(join(dir, "system-user.nk"), createUser);
    this.accountJwtPath = join(dir, "account.jwt");
    // Before the events are read (the service's JWT is minted first): the keys the last account JWT
    // pushed lists, and the one a rotation made current if that JWT lists it.
    this.signingKeys = listedSigningKeys(this.lastAccountJwt()) ?? [this.firstSigning.publicKey];
    const current = existsSync(join(dir, MINTING_KEY_FILE))
      ? readFileSync(join(dir, MINTING_KEY_FILE), "utf8").trim()
      : null;
    this.accountSigning =
      (current && this.signingKeys.includes(current) && this.signingKey(current)) || this.firstSigning;
  }

  /** The seed file of signing key `publicKey`. */
  signingSeedPath(publicKey: string): string {
    return join(
      this.dir,
      publicKey === this.firstSigning.publicKey ? FIRST_SIGNING_SEED : `account-signing-${publicKey}.nk`,
    );
  }

  /** A signing key held in auth/, or null when its seed is not here. */
  signingKey(publicKey: string): Signer | null {
    const path = this.signingSeedPath(publicKey);
    return existsSync(path) ? loadOrCreateSeed(path, createAccount) : null;
  }

  /** A new signing key, its seed written (0600) before anything uses it; not listed yet. */
  newSigningKey(): Signer {
    const pair = createAccount();
    const signer = loadOrCreateSeed(this.signingSeedPath(pair.getPublicKey()), () => pair);
    return signer;
  }

  /**
   * Lists `listed` in the account JWTs pushed from now on and mints with `current` (one of them);
   * when the minting key changes, the listeners mint their own JWTs again (membershipd's service user).
   */
  async useSigningKeys(listed: string[], current: Signer): Promise<void> {
    this.signingKeys = [...listed];
    const changed = current.publicKey !== this.accountSigning.publicKey;
    this.accountSigning = current;
    const path = join(this.dir, MINTING_KEY_FILE);
    writeFileSync(`${path}.tmp`, current.publicKey + "\n", { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
    if (changed) for (const l of this.mintingKeyListeners) await l();
  }

  /** Called after the minting key changed (membershipd re-mints its own connection's JWT). */
  onMintingKeyChange(listener: () => Promise<void>): void {
    this.mintingKeyListeners.push(listener);
  }

  operatorJwt(): Promise<string> {
    return encodeOperator("unibus", jwtKeyPair(this.operator), { system_account: this.systemAccount.publicKey });
  }

  systemAccountJwt(): Promise<string> {
    return encodeAccount("SYS", jwtKeyPair(this.systemAccount), { limits: UNLIMITED } as never, {
      signer: jwtKeyPair(this.operator),
    });
  }

  /** The UNIBUS account JWT with every revoked user key; also kept as the server's preload. */
  async accountJwt(revocations: Record<string, number>): Promise<string> {
    const jwt = await encodeAccount(
      ACCOUNT_NAME,
      jwtKeyPair(this.account),
      {
        limits: { ...UNLIMITED, ...JETSTREAM_UNLIMITED },
        signing_keys: this.signingKeys,
        revocations,
      } as never,
      { signer: jwtKeyPair(this.operator) },
    );
    writeFileSync(this.accountJwtPath, jwt + "\n", { mode: 0o600 });
    return jwt;
  }

  /** The last account JWT written, so a restarted server keeps its revocations from the first moment. */
  lastAccountJwt(): string | null {
    return existsSync(this.accountJwtPath) ? readFileSync(this.accountJwtPath, "utf8").trim() : null;
  }

  async userJwt(o: UserJwtOptions): Promise<string> {
    const p = o.permissions;
    const user: Record<string, unknown> = { pub: p.pub, sub: p.sub, ...(p.resp ? { resp: p.resp } : {}) };
    return await encodeUser(o.name, o.key, jwtKeyPair(this.account), user as never, {
      signer: jwtKeyPair(this.accountSigning),
      ...(o.expiresAt ? { exp: Math.floor(o.expiresAt.getTime() / 1000) } : {}),
    });
  }

  async systemUserCreds(): Promise<Uint8Array> {
    const jwt = await encodeUser("system", this.systemUser.publicKey, jwtKeyPair(this.systemAccount), {}, {});
    return credsFromSeedFile(jwt, join(this.dir, "system-user.nk"));
  }

  /** The server config lines that turn on operator mode with a full resolver. */
  async serverConfig(resolverDir: string): Promise<string> {
    const accountJwt = this.lastAccountJwt() ?? (await this.accountJwt({}));
    return [
      `operator: ${await this.operatorJwt()}`,
      `system_account: ${this.systemAccount.publicKey}`,
      `resolver: { type: full, dir: ${JSON.stringify(resolverDir)}, allow_delete: false, interval: "2m" }`,
      `resolver_preload: {`,
      `  ${this.systemAccount.publicKey}: ${await this.systemAccountJwt()}`,
      `  ${this.account.publicKey}: ${accountJwt}`,
      `}`,
    ].join("\n");
  }
}

/** The signing keys an account JWT lists; null when there is none or it cannot be read. */
function listedSigningKeys(jwt: string | null): string[] | null {
  if (!jwt) return null;
  try {
    const claims = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8")) as {
      nats?: { signing_keys?: unknown[] };
    };
    const keys = (claims.nats?.signing_keys ?? []).map((k) =>
      typeof k === "string" ? k : String((k as { key?: unknown }).key ?? ""),
    );
    return keys.length > 0 ? keys : null;
  } catch {
    return null;
  }
}

/** A standard .creds file from a JWT and the seed file of the key it was minted for. */
export function credsFromSeedFile(jwt: string, seedFile: string): Uint8Array {
  const buf = readSecretFile(seedFile);
  const seed = new Uint8Array(buf.subarray(0, buf.toString("utf8").trimEnd().length));
  try {
    return credsFor(jwt, seed);
  } finally {
    buf.fill(0);
    seed.fill(0);
  }
}

/**
 * A standard .creds file. With `seed` null the file holds only the JWT part (the caller appends
 * the seed it keeps), which is how a JWT minted for someone else's key is handed back.
 */
export function credsFor(jwt: string, seed: Uint8Array | null): Uint8Array {
  if (seed) return fmtCreds(jwt, { getSeed: () => seed } as unknown as KeyPair);
  return new TextEncoder().encode(`-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n`);
}
