// UNIBUS_releases: each published release by `<name>.<version>` (dots in the version as `_`).
import type { ReleaseRecord } from "../../../schemas/mod.ts";
import type { Projection } from "../projection-kernel.ts";
import { releaseKey } from "./decider.ts";

/** A published release's or app's record: the event's data as it is, with when and where it was appended. */
export function publishedRecord<D extends { name: string; version: string }>(
  data: D,
  e: { ts: string; seq: number },
): D & { published_at: string; seq: number } {
  return { ...data, published_at: e.ts, seq: e.seq };
}

export const releasesProjection: Projection<ReleaseRecord> = {
  bucket: "UNIBUS_releases",
  keys: (e) => (e.type === "ReleasePublished" ? [releaseKey(e.data.name, e.data.version)] : []),
  // keys() hands it ReleasePublished only.
  project: (r, e) => (e.type !== "ReleasePublished" ? r : publishedRecord(e.data, e)),
};
