// UNIBUS_releases: each published release by `<name>.<version>` (dots in the version as `_`).
import type { ReleaseRecord } from "../../../schemas/mod.ts";
import type { Projection } from "../projection-kernel.ts";

export const releasesProjection: Projection<ReleaseRecord> = {
  bucket: "UNIBUS_releases",
  keys: (e) => (e.type === "ReleasePublished" ? [`${e.data.name}.${e.data.version.replaceAll(".", "_")}`] : []),
  // keys() hands it ReleasePublished only.
  project: (r, e) =>
    e.type !== "ReleasePublished"
      ? r
      : {
          name: e.data.name,
          version: e.data.version,
          manifest: e.data.manifest,
          signature: e.data.signature,
          key_id: e.data.key_id,
          object: e.data.object,
          published_at: e.ts,
          seq: e.seq,
        },
};
