// What `unibus release manifest|publish|key` work with. A release is built from a directory
// (tarred by the system tar, reproducibly) or taken as a tarball; its manifest is signed with a
// key read from a 0600 file (an nkey seed or an unencrypted minisign secret key), or signed
// beforehand with the minisign tool (`release manifest`, then `minisign -S`, then `release publish
// --manifest --signature`). The tarball goes into the object store first, then the manifest and
// signature are published as an event.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { ReleaseManifest, ReleaseSpec, type ReleaseManifest as Manifest } from "../../schemas/mod.ts";
import {
  canonicalJson,
  isDomainError,
  manifestBytes,
  parseReleaseKeys,
  parseSigningKey,
  releaseObjectName,
  sha256Hex,
  signMinisign,
  verifyManifest,
  type MinisignPublicKey,
} from "../core/mod.ts";
import { RELEASE_KEYS_FILE } from "../agent/update/release-keys-file.ts";
import { SecretFileError, readSecretFile } from "../bus/mod.ts";
import { putReleaseObject } from "../bus/release-objects.ts";
import { CliError, EXIT, usageError } from "./output.ts";

const SPEC_FILE = "unibus-release.json";

interface Built {
  tarball: Uint8Array;
  manifest: Manifest;
}

/** What the flags of `release manifest|publish` say of the release; the rest comes from its spec file or name. */
export interface ReleaseFlags {
  version?: string | undefined;
  name?: string | undefined;
  notes?: string | undefined;
  spec?: string | undefined;
}

/** The tarball (a directory is tarred: sorted, owner 0, mtime 0) and its manifest. */
export function buildRelease(input: string, f: ReleaseFlags): Built {
  if (!existsSync(input)) usageError(`${input} does not exist`);
  const isDir = statSync(input).isDirectory();
  const tarball = isDir ? tarDirectory(input, SPEC_FILE) : new Uint8Array(readFileSync(input));
  const specPath = f.spec ?? (isDir && existsSync(join(input, SPEC_FILE)) ? join(input, SPEC_FILE) : null);
  const raw = specPath ? JSON.parse(readFileSync(specPath, "utf8")) : {};
  const { name: specName, min_agent_version, notes, ...rest } = raw as Record<string, unknown>;
  const spec = ReleaseSpec.safeParse(rest);
  if (!spec.success)
    usageError(`${specPath}: ${spec.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const name =
    f.name ??
    (specName as string | undefined) ??
    basename(input)
      .replace(/\.(tar\.gz|tgz|tar)$/, "")
      .toLowerCase();
  const version = f.version ?? usageError("--version V names the release's version (1.2.3)");
  const manifest = ReleaseManifest.safeParse({
    v: 1,
    name,
    version,
    sha256: sha256Hex(tarball),
    size: tarball.length,
    min_agent_version: (min_agent_version as string | undefined) ?? "0.0.1",
    created_at: new Date().toISOString(),
    notes: f.notes ?? (notes as string | undefined) ?? "",
    spec: spec.data,
  });
  if (!manifest.success) usageError(manifest.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
  return { tarball, manifest: manifest.data };
}

/** A directory tarred reproducibly (sorted, owner 0, mtime 0), without its spec file `exclude`. */
export function tarDirectory(dir: string, exclude: string): Uint8Array {
  const args = ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0"];
  return new Uint8Array(
    execFileSync("tar", [...args, "--exclude", `./${exclude}`, "-czf", "-", "-C", dir, "."], {
      maxBuffer: 512 * 1024 * 1024,
    }),
  );
}

/** The signing key from a 0600 file: never from argv, never printed. */
export function signingKey(path: string) {
  let text: string;
  try {
    text = readSecretFile(path).toString("utf8");
  } catch (err) {
    throw new CliError(
      err instanceof SecretFileError ? err.code : "E_SECRET_MISSING",
      (err as Error).message,
      EXIT.usage,
    );
  }
  const k = parseSigningKey(text);
  if ("code" in k) throw new CliError(k.code, `${path}: ${k.message}`, EXIT.usage);
  return k;
}

/** Adds the tarball under its SHA-256 unless it is there (an object is never replaced). */
export async function upload(nc: NatsConnection, tarball: Uint8Array, m: Manifest): Promise<void> {
  await putReleaseObject(nc, releaseObjectName(m.sha256), tarball, `${m.name} ${m.version}`);
}

/** A release signed beforehand with minisign: the tarball, its canonical manifest and the signature. */
export function presigned(
  input: string,
  manifestFile: string,
  signatureFile: string | undefined,
): Built & { signature: string } {
  const tarball = new Uint8Array(readFileSync(input));
  const text = readFileSync(manifestFile, "utf8");
  const parsed = ReleaseManifest.safeParse(JSON.parse(text));
  if (!parsed.success) usageError(`${manifestFile} is not a release manifest`);
  const manifest = parsed.data;
  if (canonicalJson(manifest) !== text)
    usageError(`${manifestFile} is not in canonical form (make it with unibus release manifest and sign it unchanged)`);
  if (sha256Hex(tarball) !== manifest.sha256)
    throw new CliError("E_RELEASE_TAMPERED", `${input} is not the tarball ${manifestFile} describes (SHA-256 differs)`);
  return { tarball, manifest, signature: readFileSync(signatureFile ?? `${manifestFile}.minisig`, "utf8") };
}

/** A release built here and signed with the key in `keyFile`. */
export function signedHere(input: string, keyFile: string, f: ReleaseFlags): Built & { signature: string } {
  const key = signingKey(keyFile);
  const { tarball, manifest } = buildRelease(input, f);
  return {
    tarball,
    manifest,
    signature: signMinisign(
      manifestBytes(manifest),
      key,
      `unibus release ${manifest.name} ${manifest.version} sha256:${manifest.sha256}`,
    ),
  };
}

/**
 * The release keys `release publish` checks a signature against: `--trusted-keys FILE`, else
 * `<data dir>/release-keys.pub` (the file agents trust, copied to the operator's machine). Without
 * either nothing is published: a release signed by a key no agent trusts would only fail later,
 * on every node.
 */
export function publisherTrustedKeys(dataDir: string, explicit: string | undefined): MinisignPublicKey[] {
  const path = explicit ?? join(dataDir, RELEASE_KEYS_FILE);
  if (!existsSync(path))
    throw new CliError(
      "E_RELEASE_NO_TRUSTED_KEYS",
      `no trusted release keys at ${path}: put your agents' release-keys.pub there (unibus release key KEYFILE prints a key's line) or pass --trusted-keys FILE`,
      EXIT.usage,
    );
  if (statSync(path).mode & 0o022)
    throw new CliError("E_RELEASE_NO_TRUSTED_KEYS", `${path} is writable by others; chmod 644 it first`, EXIT.usage);
  const { keys } = parseReleaseKeys(readFileSync(path, "utf8"));
  if (keys.length === 0)
    throw new CliError("E_RELEASE_NO_TRUSTED_KEYS", `${path} holds no minisign public key`, EXIT.usage);
  return keys;
}

/** Refuses a release whose signature is corrupted or by a key not in `trusted`, before anything is stored. */
export function checkPublisherTrust(
  release: { manifest: Manifest; signature: string },
  trusted: MinisignPublicKey[],
): void {
  const v = verifyManifest(release.manifest, release.signature, trusted);
  if (isDomainError(v)) throw new CliError(v.code, `${v.message}; nothing was stored`, EXIT.failed);
}
