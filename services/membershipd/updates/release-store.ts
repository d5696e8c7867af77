// The replicated object store nodes fetch release tarballs from (UNIBUS_releases; the object
// name is the tarball's SHA-256, so no release name reaches a subject on disk). Its stream refuses
// rollups, purges and deletes, and is read by direct get (services/bus/release-objects.ts).
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ReleaseManifest } from "../../../schemas/mod.ts";
import { domainError, releaseObjectName, type DomainError } from "../../core/mod.ts";
import {
  ensureReleaseStream,
  releaseObjectInfo,
  RELEASES_OBJECT_STORE,
  type ReleaseObjectInfo,
} from "../../bus/release-objects.ts";

export { RELEASES_OBJECT_STORE };

/** What release.publish needs of the store: an object's (first) description. */
export interface ReleaseStore {
  info(name: string): Promise<ReleaseObjectInfo | null>;
}

export async function ensureReleaseStore(
  nc: NatsConnection,
  jsm: JetStreamManager,
  replicas: number,
): Promise<ReleaseStore> {
  await ensureReleaseStream(jsm, replicas);
  return { info: (name) => releaseObjectInfo(nc, name) };
}

/** The stored object must be there with the manifest's size and digest (the agent checks the bytes themselves again). */
export async function checkStoredTarball(
  store: ReleaseStore,
  m: Pick<ReleaseManifest, "name" | "version" | "sha256" | "size">,
): Promise<DomainError | null> {
  const name = releaseObjectName(m.sha256);
  let info: ReleaseObjectInfo | null;
  try {
    info = await store.info(name);
  } catch (err) {
    return domainError(
      "E_RELEASE_TAMPERED",
      `the stored tarball of ${m.name} ${m.version} has an unreadable description: ${(err as Error).message}`,
    );
  }
  if (!info || info.deleted)
    return domainError(
      "E_RELEASE_NOT_FOUND",
      `the tarball of ${m.name} ${m.version} is not in ${RELEASES_OBJECT_STORE} (upload it first; unibus release publish does)`,
    );
  const want = `SHA-256=${Buffer.from(m.sha256, "hex").toString("base64url")}`;
  const have = info.digest.replace(/=+$/, "");
  if (info.size !== m.size || have !== want) {
    return domainError(
      "E_RELEASE_TAMPERED",
      `the stored tarball (${info.size} bytes) does not match the manifest (${m.size} bytes, SHA-256 ${m.sha256.slice(0, 16)}…)`,
    );
  }
  return null;
}
