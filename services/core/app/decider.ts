// The app catalog: one aggregate per published version (`app/<name>@<version>`, published once),
// the signed bytes of a manifest and its verification against the trusted release keys. Pure: the
// shell stores the tarball and reads the keys. Apps share releases' keys and object store.
import { AppManifest, type AppEvent } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError, type DomainError } from "../errors.ts";
import { releaseKey, releaseObjectName } from "../release/decider.ts";
import { canonicalJson } from "../signing/canonical.ts";
import { parseSignature, verifyMinisign, type MinisignPublicKey } from "../signing/minisign.ts";
import { settingsSchemaProblem } from "./settings.ts";

export const appId = (name: string, version: string) => `${name}@${version}`;
/** The KV key of an app version in UNIBUS_apps (dots are KV token separators). */
export const appKey = (name: string, version: string) => releaseKey(name, version);
/** Content-addressed like releases, in the same object store: the same tarball is stored once. */
export const appObjectName = (sha256: string) => releaseObjectName(sha256);

/** The exact bytes an app signature covers: the parsed manifest's canonical JSON (defaults filled in). */
export function appManifestBytes(m: AppManifest): Uint8Array {
  return new TextEncoder().encode(canonicalJson(m));
}

export type VerifiedAppManifest = { manifest: AppManifest; keyId: string };

/**
 * The manifest's schema (its settings schema included) and its signature by one of `trusted`.
 * Codes: E_APP_INVALID (not a manifest), E_APP_UNSIGNED (no readable signature), E_APP_WRONG_KEY
 * (signed by a key we do not trust), E_APP_BAD_SIGNATURE (a trusted key id, but it does not verify).
 */
export function verifyAppManifest(
  manifest: unknown,
  signature: string | null | undefined,
  trusted: readonly MinisignPublicKey[],
): VerifiedAppManifest | DomainError {
  const m = AppManifest.safeParse(manifest);
  if (!m.success)
    return domainError(
      "E_APP_INVALID",
      `not an app manifest: ${m.error.issues
        .slice(0, 2)
        .map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`)
        .join("; ")}`,
    );
  const { name, version } = m.data;
  const problem = settingsSchemaProblem(m.data.settings);
  if (problem) return domainError("E_APP_INVALID", `app ${name} ${version}: ${problem}`);
  if (!signature || signature.trim() === "")
    return domainError("E_APP_UNSIGNED", `app ${name} ${version} has no signature; nothing unsigned is installed`);
  const v = verifyMinisign(appManifestBytes(m.data), signature, trusted);
  if ("code" in v) {
    const code =
      v.code === "E_MINISIGN_FORMAT"
        ? "E_APP_UNSIGNED"
        : v.code === "E_RELEASE_WRONG_KEY"
          ? "E_APP_WRONG_KEY"
          : "E_APP_BAD_SIGNATURE";
    return domainError(code, `app ${name} ${version}: ${v.message}`);
  }
  return { manifest: m.data, keyId: v.keyId };
}

export type AppState =
  | { published: false }
  | { published: true; manifest: AppManifest; signature: string; keyId: string; object: string };
/** `manifest` and `signature` as verifyAppManifest accepted them, with the key id it returned. */
export type AppCommand = { type: "PublishApp"; manifest: AppManifest; signature: string; keyId: string };

export const appDecider: Decider<AppCommand, AppEvent, AppState> = {
  initialState: () => ({ published: false }),
  decide(c, s) {
    const { name, version } = c.manifest;
    const sig = parseSignature(c.signature);
    if ("code" in sig)
      return domainError("E_APP_UNSIGNED", `the signature of app ${name} ${version} is not a minisign signature`);
    // The shell verified with this key; a signature naming another is not the one it verified.
    if (sig.keyId !== c.keyId)
      return domainError("E_APP_WRONG_KEY", `app ${name} ${version} is signed by key ${sig.keyId}, not ${c.keyId}`);
    if (s.published) {
      // The same manifest again is a retry; anything else under a published version is refused.
      if (canonicalJson(s.manifest) === canonicalJson(c.manifest)) return [];
      return domainError(
        "E_APP_EXISTS",
        `app ${name} ${version} is already published with other contents; publish a new version`,
      );
    }
    return [
      {
        type: "AppPublished",
        data: {
          name,
          version,
          manifest: c.manifest,
          signature: c.signature,
          key_id: c.keyId,
          object: appObjectName(c.manifest.sha256),
        },
      },
    ];
  },
  evolve: (_s, e) => ({
    published: true,
    manifest: e.data.manifest,
    signature: e.data.signature,
    keyId: e.data.key_id,
    object: e.data.object,
  }),
};

export const appAggregate = defineAggregate("app", appDecider);
