// rollout.start / status / list / resume / abort. Start resolves the selector against the active
// nodes (UNIBUS_nodes) and their locks (UNIBUS_node_locks) and hands them to the pure decider as
// facts; the driver (driver.ts) then does the rest.
import type {
  CommandEnvelope,
  LockRecord,
  NodeRecord,
  NodeReleaseRecord,
  ReleaseRecord,
  RolloutRecord,
} from "../../../schemas/mod.ts";
import {
  batchSize,
  domainError,
  isDomainError,
  releaseAggregate,
  releaseId,
  releaseNameForVersion,
  rolloutAggregate,
  sha256Hex,
  storageKey,
  type RolloutState,
} from "../../core/mod.ts";
import { liveEntry } from "../../bus/mod.ts";
import type { Handlers } from "../handlers.ts";
import { listBucket, type UpdateActionDeps } from "./release-actions.ts";
import { byCursor, pageOf } from "../page.ts";

function matches(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

const slugOf = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "-")
    .slice(0, 40);

export function rolloutHandlers(
  d: UpdateActionDeps,
  kick: (rollout: string) => void,
): Handlers<"rollout.start" | "rollout.status" | "rollout.list" | "rollout.resume" | "rollout.abort"> {
  const meta = (cmd: CommandEnvelope) => ({ actor: cmd.actor, commandId: cmd.id });
  return {
    "rollout.start": async (args, cmd) => {
      await d.caughtUp();
      // `rollout start <version>`: the release is the one published with that version.
      const name =
        args.name ??
        releaseNameForVersion(await listBucket<ReleaseRecord>(d.jsm, d.releases, "UNIBUS_releases"), args.version);
      if (isDomainError(name)) return name;
      const a = { ...args, name };
      const release = (await d.aggregates.load(releaseAggregate, releaseId(a.name, a.version))).state;
      if (!release.published)
        return domainError("E_RELEASE_NOT_FOUND", `no release ${a.name} ${a.version}; publish it first`);
      const nodes = (await listBucket<NodeRecord>(d.jsm, d.nodes, "UNIBUS_nodes")).filter(
        (n) => n.status === "active" && (a.all || matches(n.labels ?? {}, a.selector)),
      );
      const locks = new Map(
        (await listBucket<LockRecord>(d.jsm, d.locks, "UNIBUS_node_locks")).map((l) => [l.node, l.locked === true]),
      );
      const candidates = nodes
        .map((n) => ({ node: n.node as string, locked: locks.get(n.node) ?? false }))
        .sort((x, y) => x.node.localeCompare(y.node));
      // The id is derived from the command id, so a retried start names the same rollout.
      const rollout = a.rollout ?? `${slugOf(a.name)}-${slugOf(a.version)}-${sha256Hex(cmd.id).slice(0, 10)}`;
      const r = await d.aggregates.execute(
        rolloutAggregate,
        rollout,
        {
          type: "StartRollout",
          rollout,
          name: a.name,
          version: a.version,
          selector: a.selector,
          candidates,
          force: a.force,
          canary: a.canary,
          batch: batchSize(a.batch, Math.max(1, candidates.length - a.canary)),
          maxFailures: a.max_failures,
          by: cmd.actor.id,
        },
        meta(cmd),
      );
      if (isDomainError(r)) return r;
      kick(rollout);
      const started = r.events[0]?.data as { nodes: string[]; skipped: unknown[]; batch: number } | undefined;
      return {
        rollout,
        name: a.name,
        version: a.version,
        nodes: started?.nodes.length ?? null,
        skipped: started?.skipped ?? [],
        batch: started?.batch ?? null,
      };
    },
    "rollout.status": async (a) => {
      await d.caughtUp();
      const r = liveEntry<RolloutRecord>(await d.rollouts.get(storageKey(a.rollout)));
      if (!r) return domainError("E_ROLLOUT_NOT_FOUND", `no rollout ${a.rollout}`);
      const nodes = await Promise.all(
        Object.entries(r.nodes).map(async ([node, n]) => {
          const nr = liveEntry<NodeReleaseRecord>(await d.nodeReleases.get(storageKey(`${node}.${r.name}`)));
          return {
            node,
            rollout_state: n.state,
            batch: n.batch,
            code: n.code,
            reason: n.reason,
            version: nr?.version ?? null,
            slot: nr?.slot ?? null,
            state: nr?.state ?? null,
            attempts: nr?.attempts ?? 0,
            tries_left: nr?.tries_left ?? null,
          };
        }),
      );
      return { ...r, nodes: nodes.sort((x, y) => x.node.localeCompare(y.node)) };
    },
    "rollout.list": async (a) => {
      await d.caughtUp();
      const items = (await listBucket<RolloutRecord>(d.jsm, d.rollouts, "UNIBUS_rollouts")).map((r) => ({
        rollout: r.rollout,
        name: r.name,
        version: r.version,
        state: r.state,
        failures: r.failures,
        nodes: Object.keys(r.nodes).length,
        started_at: r.started_at,
        reason: r.reason,
      }));
      const cursor = (r: { started_at: string; rollout: string }) => `${r.started_at} ${r.rollout}`;
      return pageOf(byCursor(items, cursor), cursor, a.limit, a.after);
    },
    "rollout.resume": async (a, cmd) => {
      const r = await d.aggregates.execute(
        rolloutAggregate,
        a.rollout,
        { type: "ResumeRollout", by: cmd.actor.id },
        meta(cmd),
      );
      if (isDomainError(r)) return r;
      kick(a.rollout);
      return { rollout: a.rollout, resumed: true };
    },
    "rollout.abort": async (a, cmd) => {
      const r = await d.aggregates.execute(
        rolloutAggregate,
        a.rollout,
        { type: "AbortRollout", by: cmd.actor.id, reason: a.reason },
        meta(cmd),
      );
      if (isDomainError(r)) return r;
      return { rollout: a.rollout, aborted: true };
    },
  };
}

export type { RolloutState };
