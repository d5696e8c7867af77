// UNIBUS_apps: each published app version by appKey (`<name>.<version>`, dots in the version as `_`).
import type { AppRecord } from "../../../schemas/mod.ts";
import type { Projection } from "../projection-kernel.ts";
import { appKey } from "./decider.ts";

export const appProjection: Projection<AppRecord> = {
  bucket: "UNIBUS_apps",
  keys: (e) => (e.type === "AppPublished" ? [appKey(e.data.name, e.data.version)] : []),
  // keys() hands it AppPublished only.
  project: (r, e) =>
    e.type !== "AppPublished"
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
