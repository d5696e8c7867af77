// Reading standard NATS .creds files (a user JWT and the seed of the key it was minted for).
import type { Authenticator } from "@nats-io/transport-node";
import { readSecretFile } from "./secret-file.ts";
import { signerFromSeed, type ErrorCode } from "../core/mod.ts";

export interface Creds {
  /** The whole file, for the connection's authenticator. */
  bytes: Uint8Array;
  jwt: string;
  /** The user's public key (the JWT's subject): its inbox prefix is derived from it. */
  publicKey: string;
}

const JWT_BLOCK = /-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9_.-]+)\s*------END NATS USER JWT------/;
const SEED_BLOCK = /-----BEGIN USER NKEY SEED-----\s*(SU[A-Z2-7]+)\s*------END USER NKEY SEED------/;

export class CredsError extends Error {
  readonly code = "E_CREDS" satisfies ErrorCode;
}

export function parseCreds(bytes: Uint8Array, where = "creds"): Creds {
  const text = Buffer.from(bytes).toString("utf8");
  const jwt = JWT_BLOCK.exec(text)?.[1];
  if (!jwt) throw new CredsError(`${where} holds no NATS user JWT`);
  let sub: unknown;
  try {
    sub = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8")).sub;
  } catch {
    sub = undefined;
  }
  if (typeof sub !== "string" || !/^U[A-Z2-7]{55}$/.test(sub)) throw new CredsError(`${where} holds a malformed JWT`);
  return { bytes, jwt, publicKey: sub };
}

export function readCredsFile(path: string): Creds {
  return parseCreds(new Uint8Array(readSecretFile(path)), path);
}

/** The seed inside a .creds file, as bytes the caller zeroes after use; null when there is none. */
export function seedFromCreds(bytes: Uint8Array): Uint8Array | null {
  const m = SEED_BLOCK.exec(Buffer.from(bytes).toString("utf8"));
  return m ? new TextEncoder().encode(m[1]) : null;
}

/**
 * nats.js' credsAuthenticator, with the nonce signed by OpenSSL: nkeys' pure-JS Ed25519 spends
 * 13 ms deriving the key and signing at every connect, which 10,000 agents reconnecting at once
 * turn into minutes of CPU. `creds` is read at each connect, so a replaced file is picked up.
 */
export function credsAuthenticator(creds: Uint8Array | (() => Uint8Array)): Authenticator {
  return (nonce?: string) => {
    const bytes = typeof creds === "function" ? creds() : creds;
    const { jwt } = parseCreds(bytes);
    const seed = seedFromCreds(bytes);
    if (!seed) throw new CredsError("creds hold no user nkey seed");
    const signer = signerFromSeed(seed);
    seed.fill(0);
    const sig = nonce ? Buffer.from(signer.sign(new TextEncoder().encode(nonce))).toString("base64") : "";
    return { jwt, nkey: signer.publicKey, sig };
  };
}
