// Simulated nodes for rollout tests and the rollout bench, all in one process on a real
// nats-server: each is enrolled in the fleet aggregate (with a key held here), answers its
// command subjects with the real command endpoint (checks, record, trust) and runs the real
// Updater (object-store download, size, SHA-256 and signature checks, tar reader, A/B slots,
// health probe), learns whom it obeys from membershipd (`node.trust`, again on unibus.trust.changed:
// the admins, and the rollout driver for `update` alone) and reports its events to membershipd as
// `node.report`, like an agent. Only the services are not there: restarting and checking them is a no-op.
// With `apps`, each also runs the real apps' reconciler (test/sim-app-nodes.ts) and answers `apps.sync` with it.
import { createCurve } from "@nats-io/nkeys";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeActorId, Reply } from "../schemas/mod.ts";
import {
  FLEET_ID,
  fleetAggregate,
  isDomainError,
  newUserSeed,
  parseSigningKey,
  publicKeyOf,
  sha256Hex,
  signCommand,
  type MinisignSecretKey,
  type Signer,
  signerFromSeed,
  systemInputs,
} from "../services/core/mod.ts";
import type { AggregateStore } from "../services/bus/mod.ts";
import {
  CommandRecord,
  fetchTrust,
  startNodeCommandService,
  TrustList,
  type NodeCommandService,
} from "../services/agent/commands/mod.ts";
import { fakeOps } from "../services/agent/commands/testing.ts";
import { objectStoreFetcher, unsandboxedStep, Updater, type TarLimits } from "../services/agent/update/mod.ts";
import type { AppReconciler } from "../services/agent/apps/mod.ts";
import { simAppReconciler } from "./sim-app-nodes.ts";

export interface SimNode {
  node: string;
  signer: Signer;
  updater: Updater;
  svc: NodeCommandService;
  events: { type: string; data: Record<string, any> }[];
  record: CommandRecord;
  trust: TrustList;
  /** With SimOptions.apps: the node's apps' reconciler. */
  apps: AppReconciler | null;
}

/** Issues an invite and enrolls each node straight through the fleet decider (no JWTs: the plane runs without operator mode). */
export async function enrollNodes(
  aggregates: AggregateStore,
  names: readonly string[],
  labels: (n: string) => Record<string, string>,
): Promise<Map<string, Signer>> {
  const actor = { id: "test", key: signerFromSeed(newUserSeed()).publicKey };
  const hash = sha256Hex(`invite-${Math.random()}`);
  const inv = await aggregates.execute(
    fleetAggregate,
    FLEET_ID,
    {
      type: "IssueInvite",
      hash,
      expiresAt: new Date(Date.now() + 3600_000).toISOString(),
      uses: names.length,
      note: "sim",
      bootstrapKey: signerFromSeed(newUserSeed()).publicKey,
    },
    { actor, commandId: `inv-${hash.slice(0, 8)}` },
  );
  if (isDomainError(inv)) throw new Error(inv.message);
  const out = new Map<string, Signer>();
  for (const node of names) {
    const signer = signerFromSeed(newUserSeed());
    const r = await aggregates.execute(
      fleetAggregate,
      FLEET_ID,
      {
        type: "EnrollNode",
        node,
        signKey: signer.publicKey,
        kexKey: createCurve().getPublicKey(),
        labels: labels(node),
        inviteHash: hash,
        flow: "join",
        now: new Date().toISOString(),
        cidr: "10.0.0.0/16",
      },
      { actor, commandId: `enroll-${node}-${hash.slice(0, 8)}` },
    );
    if (isDomainError(r)) throw new Error(r.message);
    out.set(node, signer);
  }
  return out;
}

export interface SimOptions {
  dir: string;
  releaseKey: MinisignSecretKey;
  /** Report events to membershipd (node.report), as an agent does. */
  report?: boolean;
  limits?: TarLimits;
  log?: (line: string) => void;
  /** Run the apps' reconciler (trusting releaseKey) and answer `apps.sync` with it. */
  apps?: boolean;
  /** With `report`: called once membershipd has taken a node event (`node` is in its data). */
  onReported?: (e: { type: string; data: Record<string, any> }) => void;
}

export async function startSimNodes(
  conns: readonly NatsConnection[],
  signers: Map<string, Signer>,
  o: SimOptions,
): Promise<SimNode[]> {
  const out: SimNode[] = [];
  let i = 0;
  for (const [node, signer] of signers) {
    const nc = conns[i++ % conns.length]!;
    const events: SimNode["events"] = [];
    let seq = 0;
    let chain: Promise<unknown> = Promise.resolve();
    const report = (type: string, data: Record<string, unknown>) => {
      const e = { type, data: { node, ...data, seq: ++seq, at: new Date().toISOString() } };
      events.push(e);
      if (!o.report) return;
      // Like the agent's journal: sent again until membershipd takes it (it may be restarting).
      chain = chain.then(async () => {
        for (let attempt = 0; attempt < 100; attempt++) {
          try {
            const cmd = signCommand(
              {
                action: "node.report",
                args: { node, events: [e] },
                actor: { id: nodeActorId(node), key: signer.publicKey },
              },
              signer,
              systemInputs,
            );
            const r = Reply.parse(
              (await nc.request("unibus.cmd.membership.node.report", JSON.stringify(cmd), { timeout: 5_000 })).json(),
            );
            if (r.ok) return o.onReported?.(e);
            o.log?.(`${node}: node.report refused: ${r.error.code} ${r.error.message}`);
          } catch (err) {
            o.log?.(`${node}: node.report failed: ${(err as Error).message}`);
          }
          await new Promise((res) => setTimeout(res, 100));
        }
      });
    };
    const updater = new Updater({
      dir: join(o.dir, node, "releases"),
      agentVersion: "0.1.0",
      trustedKeys: () => [publicKeyOf(o.releaseKey)],
      fetch: objectStoreFetcher(() => nc),
      restartServices: async () => null,
      checkServices: async () => null,
      report,
      log: o.log ?? (() => {}),
      ...(o.limits ? { limits: o.limits } : {}),
      // Many simulated nodes at once: their steps run as the test, the sandbox is tested with the real agent.
      steps: unsandboxedStep,
    });
    const trust = new TrustList(join(o.dir, `${node}.trust.json`), () => fetchTrust(nc, node, signer, 5_000));
    const fetched = await trust.refresh();
    if (fetched) throw new Error(`${node}: node.trust: ${fetched.code} ${fetched.message}`);
    trust.watch(nc);
    const record = new CommandRecord(join(o.dir, `${node}.commands.jsonl`));
    const apps = o.apps
      ? simAppReconciler({
          node,
          dir: join(o.dir, node),
          nc,
          signer,
          trustedKeys: () => [publicKeyOf(o.releaseKey)],
          report,
          log: o.log ?? (() => {}),
        })
      : null;
    const ops = {
      ...fakeOps(node),
      update: (attempt: string, manifest: unknown, signature: string | null) =>
        updater.update(attempt, manifest, signature),
      ...(apps ? { appsSync: async () => ({ ok: true as const, result: apps.sync() }) } : {}),
    };
    const svc = await startNodeCommandService(nc, {
      node,
      version: "0.1.0",
      ops,
      trust,
      record,
      onEvent: (type, data) => report(type, data as Record<string, unknown>),
    });
    out.push({ node, signer, updater, svc, events, record, trust, apps });
  }
  return out;
}

export async function stopSimNodes(nodes: readonly SimNode[]): Promise<void> {
  for (const n of nodes) {
    await n.apps?.stop();
    n.trust.stop();
    await n.svc.stop();
    n.record.close();
  }
}

export const newReleaseKey = () => parseSigningKey(new TextDecoder().decode(newUserSeed())) as MinisignSecretKey;
