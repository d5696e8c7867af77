// `unibus backup keygen` and `unibus backup verify`: the operator's side of backups, offline. The
// key pair is a curve nkey (X25519): its seed goes to a 0600 file, its public key to `backup
// create`. Verify reads a backup file twice (integrity and signature, then every record) with the
// seed from a 0600 file, never argv, and writes nothing.
import { createReadStream, statSync } from "node:fs";
import { createCurve } from "@nats-io/nkeys";
import { readSecretFile, SecretFileError, writeSecretFile } from "../bus/mod.ts";
import { BackupError, verifyBackup, type BackupReport } from "../core/mod.ts";
import { CliError, EXIT, progress, table, usageError } from "./output.ts";

/** Writes a new curve seed to `out` (0600, never over an existing file); the public key X…. */
export function backupKeygen(out: string): { public_key: string; seed_file: string } {
  const kp = createCurve();
  const seed = kp.getSeed();
  try {
    writeSecretFile(out, Buffer.concat([Buffer.from(seed), Buffer.from("\n")]));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST")
      throw new CliError("E_USAGE", `${out} exists; backup keygen never writes over a key`, EXIT.usage);
    throw err;
  } finally {
    seed.fill(0);
  }
  return { public_key: kp.getPublicKey(), seed_file: out };
}

export interface BackupVerifyFlags {
  key: string;
  cluster?: string | undefined;
  trust?: string[] | undefined;
  /** Shows a progress line on stderr. */
  showProgress: boolean;
}

export async function backupVerify(file: string, f: BackupVerifyFlags): Promise<BackupReport> {
  if (!statSync(file, { throwIfNoEntry: false })?.isFile()) usageError(`${file} is not a file`);
  const seed = readSeed(f.key);
  const p = f.showProgress ? progress("backup verify") : null;
  try {
    return await verifyBackup(() => createReadStream(file, { highWaterMark: 1024 * 1024 }), {
      secretKey: seed,
      ...(f.cluster !== undefined ? { expectCluster: f.cluster } : {}),
      ...(f.trust ? { trust: f.trust } : {}),
      ...(p ? { onRecord: (n: number, total: number) => p.update(n, total) } : {}),
    });
  } catch (err) {
    if (err instanceof BackupError) throw new CliError(err.code, `${file}: ${err.message}`, EXIT.failed);
    throw err;
  } finally {
    p?.end();
    seed.fill(0);
  }
}

/** The seed's bytes from a 0600 file, without its newline; the caller zeroes them. */
function readSeed(path: string): Uint8Array {
  let raw: Buffer;
  try {
    raw = readSecretFile(path);
  } catch (err) {
    if (err instanceof SecretFileError) throw new CliError(err.code, err.message);
    throw err;
  }
  const seed = new Uint8Array(raw).slice(0, raw.toString("utf8").trimEnd().length);
  raw.fill(0);
  return seed;
}

export function reportText(r: BackupReport): string {
  return [
    `backup of cluster ${r.cluster}, made ${r.created_at} by ${r.made_by}: ${r.bytes} bytes, sha256 ${r.sha256}`,
    `signed by ${r.signer}, a trusted writer of its event stream; sealed to ${r.recipient}`,
    table(
      r.streams.map((s) => ({ ...s })),
      ["name", "messages", "first_seq", "last_seq"],
    ),
    `${r.events} events: every signature and hash chain is intact; head ${r.events_head ?? "(none)"}`,
  ].join("\n");
}
