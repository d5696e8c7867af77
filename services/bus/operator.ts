// NATS operator mode: an operator key, the system account and the UNIBUS account, whose signing
// key mints one user JWT per identity. Seeds live in DATA_DIR/auth/ (0600). JWTs are signed with
// node:crypto through a KeyPair-shaped adapter (nkeys' own Ed25519 is ~300x slower).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
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

export class OperatorAuth {
  readonly operator: Signer;
  readonly systemAccount: Signer;
  readonly account: Signer;
  readonly accountSigning: Signer;
  readonly systemUser: Signer;
  private readonly accountJwtPath: string;

  constructor(readonly dir: string) {
    this.operator = loadOrCreateSeed(join(dir, "operator.nk"), createOperator);
    this.systemAccount = loadOrCreateSeed(join(dir, "system-account.nk"), createAccount);
    this.account = loadOrCreateSeed(join(dir, "account.nk"), createAccount);
    this.accountSigning = loadOrCreateSeed(join(dir, "account-signing.nk"), createAccount);
    this.systemUser = loadOrCreateSeed(join(dir, "system-user.nk"), createUser);
    this.accountJwtPath = join(dir, "account.jwt");
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
        signing_keys: [this.accountSigning.publicKey],
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
