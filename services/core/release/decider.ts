// Releases: the release aggregate (`release/<name>@<version>`, published once), the signed bytes
// of a manifest, its verification against trusted minisign keys, and the UNIBUS_releases
// projection. Pure: the shell fetches the tarball and the keys.
import semver from "semver";
import { ReleaseManifest, type ReleaseEvent } from "../../../schemas/mod.ts";
import { canonicalJson } from "../signing/canonical.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError, type DomainError } from "../errors.ts";
import { parseSignature, verifyMinisign, type MinisignPublicKey } from "../signing/minisign.ts";

export const releaseId = (name: string, version: string) => `${name}@${version}`;
/** Object names are the tarball's digest: content-addressed, and no release name in a subject. */
export const releaseObjectName = (sha256: string) => `sha256-${sha256}`;

/** The exact bytes a release signature covers: the manifest's canonical JSON. */
export function manifestBytes(m: ReleaseManifest): Uint8Array {
  return new TextEncoder().encode(canonicalJson(m));
}

export type VerifiedManifest = { manifest: ReleaseManifest; keyId: string };

/**
 * The manifest's schema and its signature by one of `trusted`. Codes: E_RELEASE_UNSIGNED (no
 * signature), E_RELEASE_WRONG_KEY (signed, but not by a key we trust), E_RELEASE_BAD_SIGNATURE
 * (a trusted key id, but the bytes do not verify), E_BAD_REQUEST (not a manifest).
 */
export function verifyManifest(
  manifest: unknown,
  signature: string | null | undefined,
  trusted: readonly MinisignPublicKey[],
): VerifiedManifest | DomainError {
  const m = ReleaseManifest.safeParse(manifest);
  if (!m.success)
    return domainError(
      "E_BAD_REQUEST",
      `not a release manifest: ${m.error.issues
        .slice(0, 2)
        .map((i) => `${i.path.join(".")}: ${i.message}`)
        .join("; ")}`,
    );
  if (!signature || signature.trim() === "")
    return domainError(
      "E_RELEASE_UNSIGNED",
      `release ${m.data.name} ${m.data.version} has no signature; nothing unsigned is installed`,
    );
  const v = verifyMinisign(manifestBytes(m.data), signature, trusted);
  if ("code" in v) {
    const code =
      v.code === "E_MINISIGN_FORMAT"
        ? "E_RELEASE_UNSIGNED"
        : v.code === "E_RELEASE_WRONG_KEY"
          ? v.code
          : "E_RELEASE_BAD_SIGNATURE";
    return domainError(code, `release ${m.data.name} ${m.data.version}: ${v.message}`);
  }
  return { manifest: m.data, keyId: v.keyId };
}

/**
 * Semantic-version order (semver's: numeric pre-release identifiers compare as numbers, so rc.10
 * follows rc.2). Versions the schema admits are valid semver; anything else sorts first.
 */
export function compareVersions(a: string, b: string): number {
  const [x, y] = [semver.valid(a), semver.valid(b)];
  if (!x || !y) return x ? 1 : y ? -1 : 0;
  return semver.compare(x, y);
}

export type ReleaseState =
  | { published: false }
  | { published: true; manifest: ReleaseManifest; signature: string; keyId: string; object: string };
export type ReleaseCommand = { type: "PublishRelease"; manifest: ReleaseManifest; signature: string };

export const releaseDecider: Decider<ReleaseCommand, ReleaseEvent, ReleaseState> = {
  initialState: () => ({ published: false }),
  decide(c, s) {
    const sig = parseSignature(c.signature);
    if ("code" in sig)
      return domainError(
        "E_RELEASE_UNSIGNED",
        `the signature of ${c.manifest.name} ${c.manifest.version} is not a minisign signature: ${sig.message}`,
      );
    if (s.published) {
      // The same signed manifest again is a retry; anything else under a published version is refused.
      if (canonicalJson(s.manifest) === canonicalJson(c.manifest)) return [];
      return domainError(
        "E_RELEASE_EXISTS",
        `release ${c.manifest.name} ${c.manifest.version} is already published with other contents; publish a new version`,
      );
    }
    return [
      {
        type: "ReleasePublished",
        data: {
          name: c.manifest.name,
          version: c.manifest.version,
          manifest: c.manifest,
          signature: c.signature,
          key_id: sig.keyId,
          object: releaseObjectName(c.manifest.sha256),
        },
      },
    ];
  },
  evolve(_s, e) {
    return {
      published: true,
      manifest: e.data.manifest,
      signature: e.data.signature,
      keyId: e.data.key_id,
      object: e.data.object,
    };
  },
};

export const releaseAggregate = defineAggregate("release", releaseDecider);

/** The KV key of a release (versions have dots, which are KV token separators). */
export const releaseKey = (name: string, version: string) => `${name}.${version.replaceAll(".", "_")}`;

/**
 * The name of the one published release with `version` (`rollout start <version>`): none, or
 * several without `name` to choose, is an error value naming the candidates.
 */
export function releaseNameForVersion(
  published: readonly { name: string; version: string }[],
  version: string,
): string | DomainError {
  const names = [...new Set(published.filter((r) => r.version === version).map((r) => r.name))].sort();
  if (names.length === 1) return names[0]!;
  if (names.length > 1) {
    return domainError(
      "E_RELEASE_AMBIGUOUS",
      `${names.length} releases have version ${version} (${names.join(", ")}); choose one with --release NAME`,
      { candidates: names },
    );
  }
  const all = [...published]
    .sort((a, b) => a.name.localeCompare(b.name) || compareVersions(a.version, b.version))
    .map((r) => `${r.name} ${r.version}`);
  const shown =
    all.length === 0
      ? " (none is published)"
      : ` (published: ${all.slice(0, 10).join(", ")}${all.length > 10 ? `, and ${all.length - 10} more` : ""})`;
  return domainError("E_RELEASE_NOT_FOUND", `no published release has version ${version}${shown}`, { candidates: [] });
}
