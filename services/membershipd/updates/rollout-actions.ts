// rollout.start / status / list / resume / abort. Start resolves the selector against the active
// nodes (UNIBUS_nodes) and their locks (UNIBUS_node_locks) and hands them to the pure decider as
// facts; the driver (driver.ts) then does the rest.
import type {
  CommandEnvelope,
  LockRecord,
  NodeRecord,
  NodeAppRecord,
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
import type { Handlers, ServedArgs } from "../handlers.ts";
import type { UpdateActionDeps } from "./release-actions.ts";
import { listBucket } from "../list-bucket.ts";
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
      if (args.app) return startAppRollout(d, args, cmd, kick);
      // `rollout start <version>`: the release is the one published with that version.
      const name =
        args.name ??
        releaseNameForVersion(await listBucket<ReleaseRecord>(d.jsm, d.releases, "UNIBUS_releases"), args.version);
      if (isDomainError(name)) return name;
      const a = { ...args, name };
      const release = (await d.aggregates.load(releaseAggregate, releaseId(a.name, a.version))).state;
      if (!release.published)
        return domainError("E_RELEASE_NOT_FOUND", `no release ${a.name} ${a.version}; publish it first`);
      return startRollout(d, { ...a, candidates: await candidatesOf(d, a) }, cmd, kick);
    },
    "rollout.status": async (a) => {
      await d.caughtUp();
      const r = liveEntry<RolloutRecord>(await d.rollouts.get(storageKey(a.rollout)));
      if (!r) return domainError("E_ROLLOUT_NOT_FOUND", `no rollout ${a.rollout}`);
      const nodes = await Promise.all(
        Object.entries(r.nodes).map(async ([node, n]) => ({
          node,
          rollout_state: n.state,
          batch: n.batch,
          code: n.code,
          reason: n.reason,
          ...(r.target === "app" ? await appColumns(d, node, r.name) : await releaseColumns(d, node, r.name)),
        })),
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

/** A release rollout's node row: the node's version, slot and trial, from UNIBUS_node_releases. */
async function releaseColumns(d: UpdateActionDeps, node: string, release: string) {
  const nr = liveEntry<NodeReleaseRecord>(await d.nodeReleases.get(storageKey(`${node}.${release}`)));
  return {
    version: nr?.version ?? null,
    slot: nr?.slot ?? null,
    state: nr?.state ?? null,
    attempts: nr?.attempts ?? 0,
    tries_left: nr?.tries_left ?? null,
  };
}

/** An app rollout's node row: the version the node runs and its state, from UNIBUS_node_apps. */
async function appColumns(d: UpdateActionDeps, node: string, app: string) {
  const rec = d.nodeApps ? liveEntry<NodeAppRecord>(await d.nodeApps.get(storageKey(`${node}.${app}`))) : undefined;
  return {
    version: rec?.actual?.version ?? null,
    slot: null,
    state: rec?.actual?.state ?? null,
    attempts: 0,
    tries_left: null,
  };
}

type StartArgs = ServedArgs<"rollout.start"> & { name: string };

/** The active nodes the selector matches, each with whether it is locked, by name. */
async function candidatesOf(d: UpdateActionDeps, a: StartArgs) {
  const nodes = (await listBucket<NodeRecord>(d.jsm, d.nodes, "UNIBUS_nodes")).filter(
    (n) => n.status === "active" && (a.all || matches(n.labels ?? {}, a.selector)),
  );
  const locks = new Map(
    (await listBucket<LockRecord>(d.jsm, d.locks, "UNIBUS_node_locks")).map((l) => [l.node, l.locked === true]),
  );
  return nodes
    .map((n) => ({ node: n.node as string, locked: locks.get(n.node) ?? false }))
    .sort((x, y) => x.node.localeCompare(y.node));
}

async function startRollout(
  d: UpdateActionDeps,
  a: StartArgs & { candidates: { node: string; locked: boolean }[]; target?: "app" },
  cmd: CommandEnvelope,
  kick: (rollout: string) => void,
) {
  // The id is derived from the command id, so a retried start names the same rollout.
  const rollout = a.rollout ?? `${slugOf(a.name)}-${slugOf(a.version)}-${sha256Hex(cmd.id).slice(0, 10)}`;
  const { candidates } = a;
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
      ...(a.target ? { target: a.target } : {}),
    },
    { actor: cmd.actor, commandId: cmd.id },
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
}

/** An app rollout: the plan over the nodes it would touch must be the one the operator reviewed. */
async function startAppRollout(
  d: UpdateActionDeps,
  args: ServedArgs<"rollout.start">,
  cmd: CommandEnvelope,
  kick: (rollout: string) => void,
) {
  if (!d.apps) return domainError("E_APP_NOT_FOUND", "this membershipd serves no apps");
  const a = { ...args, name: args.name! };
  const candidates = await candidatesOf(d, a);
  // The review covered every node the selector matches (app.plan, op deploy): locked ones too.
  const plans = await d.apps.plans(
    candidates.map((c) => c.node),
    a.name,
    a.version,
  );
  if (d.apps.digest(plans) !== a.plan)
    return domainError(
      "E_APP_PLAN_CHANGED",
      `the plan for ${a.name} ${a.version} changed since it was reviewed (a node or the catalog changed); review it again`,
    );
  const refusal = d.apps.refusal(plans);
  if (refusal) return refusal;
  return startRollout(d, { ...a, candidates, target: "app" }, cmd, kick);
}

export type { RolloutState };
