// The replicated object store nodes fetch release tarballs from (UNIBUS_releases; the object
// name is the tarball's SHA-256, so no release name reaches a subject on disk).
import { Objm, type ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ReleaseManifest } from "../../../schemas/mod.ts";
import { domainError, releaseObjectName, type DomainError } from "../../core/mod.ts";

export const RELEASES_OBJECT_STORE = "UNIBUS_releases";

export async function ensureReleaseStore(nc: NatsConnection, replicas: number): Promise<ObjectStore> {
  return await new Objm(nc).create(RELEASES_OBJECT_STORE, { replicas, description: "unibus release tarballs, by SHA-256" });
}

/** The stored object must be there with the manifest's size and digest (the agent checks the bytes themselves again). */
export async function checkStoredTarball(store: ObjectStore, m: ReleaseManifest): Promise<DomainError | null> {
  const name = releaseObjectName(m.sha256);
  const info = await store.info(name);
  if (!info || info.deleted) return domainError("E_RELEASE_NOT_FOUND", `the tarball of ${m.name} ${m.version} is not in ${RELEASES_OBJECT_STORE} (upload it first; unibus release publish does)`);
  const want = `SHA-256=${Buffer.from(m.sha256, "hex").toString("base64url")}`;
  const have = info.digest.replace(/=+$/, "");
  if (info.size !== m.size || have !== want) {
    return domainError("E_RELEASE_TAMPERED", `the stored tarball (${info.size} bytes) does not match the manifest (${m.size} bytes, SHA-256 ${m.sha256.slice(0, 16)}…)`);
  }
  return null;
}
