// app.publish, app.list, app.show: the catalog of signed apps. Publishing stores an app the CLI has
// already checked against the trusted release keys (agents check it again against their own);
// membershipd checks the stored tarball against the manifest.
import type { AppRecord } from "../../../schemas/mod.ts";
import {
  appAggregate,
  appId,
  appKey,
  compareVersions,
  domainError,
  isDomainError,
  parseSignature,
  storageKey,
} from "../../core/mod.ts";
import { liveEntry } from "../../bus/mod.ts";
import type { Handlers } from "../handlers.ts";
import { listBucket } from "../list-bucket.ts";
import { byCursor, pageOf } from "../page.ts";
import { checkStoredTarball } from "../updates/release-store.ts";
import { catalog, commandMeta, type AppActionDeps } from "./context.ts";

export function catalogHandlers(d: AppActionDeps): Handlers<"app.publish" | "app.list" | "app.show"> {
  return {
    "app.publish": async (a, cmd) => {
      const stored = await checkStoredTarball(d.store, a.manifest);
      if (stored) return stored;
      const sig = parseSignature(a.signature);
      if ("code" in sig)
        return domainError(
          "E_APP_UNSIGNED",
          `the signature of ${a.manifest.name} ${a.manifest.version} is not a minisign signature: ${sig.message}`,
        );
      const r = await d.aggregates.execute(
        appAggregate,
        appId(a.manifest.name, a.manifest.version),
        { type: "PublishApp", manifest: a.manifest, signature: a.signature, keyId: sig.keyId },
        commandMeta(cmd),
      );
      if (isDomainError(r)) return r;
      const { name, version, sha256, size } = a.manifest;
      return { name, version, sha256, size, published: r.events.length > 0, seq: r.seqs.at(-1) ?? null };
    },
    "app.list": async (a) => {
      await d.caughtUp();
      const items = (await listBucket<AppRecord>(d.jsm, d.apps, "UNIBUS_apps"))
        .filter((r) => a.name === undefined || r.name === a.name)
        .map((r) => ({
          name: r.name,
          version: r.version,
          description: r.manifest.description,
          key_id: r.key_id,
          published_at: r.published_at,
        }));
      const cursor = (r: { name: string; published_at: string }) => `${r.name} ${r.published_at}`;
      return pageOf(byCursor(items, cursor), cursor, a.limit, a.after);
    },
    "app.show": async (a) => {
      await d.caughtUp();
      if (a.version !== undefined) {
        const r = liveEntry<AppRecord>(await d.apps.get(storageKey(appKey(a.name, a.version))));
        return r ?? domainError("E_APP_NOT_FOUND", `no app ${a.name} ${a.version} is published`);
      }
      const all = [...(await catalog(d)).values()].filter((r) => r.name === a.name);
      const newest = all.sort((x, y) => compareVersions(y.version, x.version))[0];
      return newest ?? domainError("E_APP_NOT_FOUND", `no app ${a.name} is published`);
    },
  };
}
