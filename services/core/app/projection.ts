// UNIBUS_apps: each published app version by appKey (`<name>.<version>`, dots in the version as `_`).
import type { AppRecord } from "../../../schemas/mod.ts";
import type { Projection } from "../projection-kernel.ts";
import { publishedRecord } from "../release/projection.ts";
import { appKey } from "./decider.ts";

export const appProjection: Projection<AppRecord> = {
  bucket: "UNIBUS_apps",
  keys: (e) => (e.type === "AppPublished" ? [appKey(e.data.name, e.data.version)] : []),
  // keys() hands it AppPublished only.
  project: (r, e) => (e.type !== "AppPublished" ? r : publishedRecord(e.data, e)),
};
