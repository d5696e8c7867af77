// A user's X25519 exchange key as the CLI keeps it: a curve nkey seed ("SX…") in a 0600 file next
// to the signing seed (`alice.nk` → `alice.kex.nk`). Room keys are sealed to its public half, so
// whoever holds this file reads the user's rooms: it is as secret as the signing seed.
import { existsSync, renameSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { createCurve } from "@nats-io/nkeys";
import { readSecretFile, writeSecretFile } from "../../bus/mod.ts";
import { kexPairFromSeed, type KexPair } from "../../core/mod.ts";
import { resolveIdentityPath, type GlobalOptions } from "../context.ts";
import { CliError, EXIT } from "../output.ts";

/** `foo.nk` or `foo.creds` → `foo.kex.nk`; any other name gets `.kex.nk` appended. */
export function kexSeedSibling(identityPath: string): string {
  return identityPath.replace(/\.(nk|creds)$/, "") + ".kex.nk";
}

/** The exchange seed rooms use: --kex-seed, else the signing identity's sibling. */
export function kexSeedPath(o: GlobalOptions, kexSeed?: string): string {
  return kexSeed ? resolve(kexSeed) : kexSeedSibling(resolveIdentityPath(o));
}

/** A new exchange pair's seed (the caller zeroes it) and its "X…" public key. */
export function newKexSeed(): { seed: Uint8Array; publicKey: string } {
  const kp = createCurve();
  return { seed: kp.getSeed(), publicKey: kp.getPublicKey() };
}

/**
 * Writes `seed` to `path.pending` (0600), to be renamed by commitKexSeed once the server took the
 * public key: a refused or failed command leaves no seed that matches nothing.
 */
export function stageKexSeed(path: string, seed: Uint8Array): void {
  if (existsSync(path))
    throw new CliError("E_USAGE", `${path} already exists; move it away to make a new exchange key`, EXIT.usage);
  rmSync(`${path}.pending`, { force: true });
  writeSecretFile(`${path}.pending`, Buffer.concat([Buffer.from(seed), Buffer.from("\n")]));
}

export const commitKexSeed = (path: string): void => renameSync(`${path}.pending`, path);
export const dropKexSeed = (path: string): void => rmSync(`${path}.pending`, { force: true });

/** The X25519 pair in the seed file; the caller zeroes `secretKey`. A missing file is one clear sentence. */
export async function loadKexPair(path: string): Promise<KexPair> {
  if (!existsSync(path))
    throw new CliError(
      "E_SECRET_MISSING",
      `no exchange key seed at ${path}: pass --kex-seed FILE, or make one with unibus user kex <handle>`,
    );
  let buf: Buffer;
  try {
    buf = readSecretFile(path);
  } catch (err) {
    throw new CliError(
      (err as { code?: string }).code === "E_SECRET_PERMS" ? "E_SECRET_PERMS" : "E_IDENTITY",
      (err as Error).message,
    );
  }
  const seed = new Uint8Array(buf).slice(0, buf.toString("utf8").trimEnd().length);
  buf.fill(0);
  try {
    return await kexPairFromSeed(seed);
  } catch {
    throw new CliError("E_IDENTITY", `${path} does not hold a curve nkey seed (SX…)`);
  } finally {
    seed.fill(0);
  }
}
