// release.publish / list / show and node.lock / unlock. Publishing checks the manifest's schema,
// that the signature is minisign's format and that the tarball is stored as the manifest says;
// whether the signing key is trusted is each agent's decision (its own list of keys).
import type { KV } from "@nats-io/kv";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { CommandEnvelope, ReleaseRecord } from "../../../schemas/mod.ts";
import {
  domainError,
  isDomainError,
  lockAggregate,
  releaseAggregate,
  releaseId,
  releaseKey,
  storageKey,
} from "../../core/mod.ts";
import { liveEntry, type AggregateStore } from "../../bus/mod.ts";
import { listBucket } from "../list-bucket.ts";
import type { Handlers } from "../handlers.ts";
import { checkStoredTarball, type ReleaseStore } from "./release-store.ts";
import type { AppDeployer } from "../apps/deploy.ts";
import { byCursor, pageOf } from "../page.ts";

export interface UpdateActionDeps {
  aggregates: AggregateStore;
  jsm: JetStreamManager;
  releases: KV;
  rollouts: KV;
  locks: KV;
  nodeReleases: KV;
  nodes: KV;
  store: ReleaseStore;
  caughtUp(): Promise<void>;
  /** App rollouts (services/membershipd/apps): absent where apps are not served. */
  apps?: AppDeployer;
  /** UNIBUS_node_apps, for an app rollout's status. */
  nodeApps?: KV;
}

export function releaseHandlers(
  d: UpdateActionDeps,
): Handlers<"release.publish" | "release.list" | "release.show" | "node.lock" | "node.unlock"> {
  const meta = (cmd: CommandEnvelope) => ({ actor: cmd.actor, commandId: cmd.id });
  return {
    "release.publish": async (a, cmd) => {
      const stored = await checkStoredTarball(d.store, a.manifest);
      if (stored) return stored;
      const r = await d.aggregates.execute(
        releaseAggregate,
        releaseId(a.manifest.name, a.manifest.version),
        { type: "PublishRelease", manifest: a.manifest, signature: a.signature },
        meta(cmd),
      );
      if (isDomainError(r)) return r;
      return {
        name: a.manifest.name,
        version: a.manifest.version,
        sha256: a.manifest.sha256,
        size: a.manifest.size,
        published: r.events.length > 0,
        seq: r.seqs.at(-1) ?? null,
      };
    },
    "release.list": async (a) => {
      await d.caughtUp();
      const items = (
        await listBucket<ReleaseRecord>(
          d.jsm,
          d.releases,
          "UNIBUS_releases",
          a.name ? `${storageKey(a.name)}.>` : undefined,
        )
      ).map((r) => ({
        name: r.name,
        version: r.version,
        sha256: r.manifest.sha256,
        size: r.manifest.size,
        key_id: r.key_id,
        published_at: r.published_at,
        notes: r.manifest.notes,
      }));
      // By name, then by when it was published: the cursor says both (a space sorts before any name's character).
      const cursor = (r: { name: string; published_at: string }) => `${r.name} ${r.published_at}`;
      return pageOf(byCursor(items, cursor), cursor, a.limit, a.after);
    },
    "release.show": async (a) => {
      await d.caughtUp();
      const r = liveEntry(await d.releases.get(storageKey(releaseKey(a.name, a.version))));
      return r ?? domainError("E_RELEASE_NOT_FOUND", `no release ${a.name} ${a.version}`);
    },
    "node.lock": async (a, cmd) => {
      const r = await d.aggregates.execute(
        lockAggregate,
        a.node,
        { type: "LockNode", node: a.node, reason: a.reason, by: cmd.actor.id },
        meta(cmd),
      );
      return isDomainError(r) ? r : { node: a.node, locked: true };
    },
    "node.unlock": async (a, cmd) => {
      const r = await d.aggregates.execute(
        lockAggregate,
        a.node,
        { type: "UnlockNode", node: a.node, by: cmd.actor.id },
        meta(cmd),
      );
      return isDomainError(r) ? r : { node: a.node, locked: false };
    },
  };
}
