// What `unibus app publish` works with. An app is a directory: `unibus-app.json` (the manifest
// without what is computed here: the tarball's SHA-256 and size, the time, `v` and `kind`) and the
// files the app runs, tarred reproducibly like a release. The manifest is signed (minisign format)
// with a key from a 0600 file and checked against the trusted release keys before anything is
// stored; the tarball goes into the object store first, then the event.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { AppManifest, type AppManifest as Manifest } from "../../schemas/mod.ts";
import {
  appManifestBytes,
  appObjectName,
  isDomainError,
  settingsSchemaProblem,
  sha256Hex,
  signMinisign,
  verifyAppManifest,
  type MinisignPublicKey,
} from "../core/mod.ts";
import { putReleaseObject } from "../bus/release-objects.ts";
import type { NatsConnection } from "@nats-io/transport-node";
import { CliError, EXIT, usageError } from "./output.ts";
import { signingKey, tarDirectory } from "./release.ts";

export const APP_FILE = "unibus-app.json";

export interface BuiltApp {
  tarball: Uint8Array;
  manifest: Manifest;
  signature: string;
}

/** The directory tarred (sorted, owner 0, mtime 0, without its unibus-app.json) and its manifest. */
export function buildApp(dir: string, version: string | undefined): { tarball: Uint8Array; manifest: Manifest } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) usageError(`${dir} is not a directory`);
  const file = join(dir, APP_FILE);
  if (!existsSync(file)) usageError(`${dir} has no ${APP_FILE} (the app's manifest: name, version, services, …)`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new CliError("E_APP_INVALID", `${file} is not JSON: ${(err as Error).message}`, EXIT.usage);
  }
  const tarball = tarDirectory(dir, APP_FILE);
  const parsed = AppManifest.safeParse({
    ...raw,
    v: 1,
    kind: "app",
    version: version ?? raw.version,
    sha256: sha256Hex(tarball),
    size: tarball.length,
    min_agent_version: raw.min_agent_version ?? "0.0.1",
    created_at: new Date().toISOString(),
  });
  if (!parsed.success)
    throw new CliError(
      "E_APP_INVALID",
      `${file}: ${parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join(".")}: ${i.message}`)
        .join("; ")}`,
      EXIT.usage,
    );
  const problem = settingsSchemaProblem(parsed.data.settings);
  if (problem) throw new CliError("E_APP_INVALID", `${file}: settings: ${problem}`, EXIT.usage);
  return { tarball, manifest: parsed.data };
}

/** Built and signed with the key in `keyFile`, then checked against `trusted` before anything is stored. */
export function signedApp(
  dir: string,
  keyFile: string,
  version: string | undefined,
  trusted: MinisignPublicKey[],
): BuiltApp {
  const key = signingKey(keyFile);
  const { tarball, manifest } = buildApp(dir, version);
  const signature = signMinisign(
    appManifestBytes(manifest),
    key,
    `unibus app ${manifest.name} ${manifest.version} sha256:${manifest.sha256}`,
  );
  const v = verifyAppManifest(manifest, signature, trusted);
  if (isDomainError(v)) throw new CliError(v.code, `${v.message}; nothing was stored`, EXIT.failed);
  return { tarball, manifest, signature };
}

/** A manifest signed beforehand (minisign -S over the canonical bytes), checked the same way. */
export function presignedApp(
  tarballFile: string,
  manifestFile: string,
  signatureFile: string | undefined,
  trusted: MinisignPublicKey[],
): BuiltApp {
  const tarball = new Uint8Array(readFileSync(tarballFile));
  let manifest: unknown;
  try {
    manifest = JSON.parse(readFileSync(manifestFile, "utf8"));
  } catch (err) {
    throw new CliError(
      "E_APP_INVALID",
      `${manifestFile} is not a JSON manifest: ${(err as Error).message}`,
      EXIT.usage,
    );
  }
  const sigFile = signatureFile ?? `${manifestFile}.minisig`;
  if (!existsSync(sigFile))
    throw new CliError(
      "E_APP_UNSIGNED",
      `there is no signature at ${sigFile}; nothing unsigned is stored`,
      EXIT.failed,
    );
  const signature = readFileSync(sigFile, "utf8");
  const v = verifyAppManifest(manifest, signature, trusted);
  if (isDomainError(v)) throw new CliError(v.code, `${v.message}; nothing was stored`, EXIT.failed);
  if (sha256Hex(tarball) !== v.manifest.sha256)
    throw new CliError(
      "E_RELEASE_TAMPERED",
      `${tarballFile} is not the tarball ${manifestFile} describes; nothing was stored`,
    );
  return { tarball, manifest: v.manifest, signature };
}

export async function uploadApp(nc: NatsConnection, app: BuiltApp): Promise<void> {
  await putReleaseObject(
    nc,
    appObjectName(app.manifest.sha256),
    app.tarball,
    `app ${app.manifest.name} ${app.manifest.version}`,
  );
}
