// The setting the rollout and app benchmarks share: a control plane in this process with its
// rollout driver quick to scan, connections for the simulated nodes, an admin sender, and the
// teardown of it all.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "../services/bus/mod.ts";
import { signerFromSeed } from "../services/core/mod.ts";
import { startControlPlane } from "../services/membershipd/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { stopSimNodes, type SimNode } from "../test/sim-agents.ts";
import { startPlane, tempDir } from "../test/harness.ts";

export async function startSimFleetPlane(label: string, connections: number) {
  const h = await startPlane();
  await h.plane.stop();
  const plane = await startControlPlane({
    nc: h.nc,
    dataDir: h.dataDir,
    replicas: 1,
    clusterName: "bench",
    updates: { scanMs: 1000, retryMs: 200 },
  });
  const dir = tempDir(`unibus-bench-${label}-`);
  const conns: NatsConnection[] = [];
  for (let i = 0; i < connections; i++)
    conns.push(await connectNats({ servers: h.nats.url, name: `bench-nodes-${i}` }));
  const admin = signerFromSeed(readFileSync(join(h.dataDir, "admin.nk"), "utf8").trim());
  /** An admin command to membershipd; a refusal throws with its code. */
  const send = async (action: string, args: Record<string, unknown>) => {
    const r = await sendCommand(
      h.nc,
      `unibus.cmd.membership.${action}`,
      buildCommand(admin, "admin", action, args),
      30_000,
    );
    if (!r.ok) throw new Error(`${action}: ${r.error.code} ${r.error.message}`);
    return r.result as any;
  };
  return {
    h,
    plane,
    dir,
    conns,
    send,
    /** The bootstrap admin's signer (handle `admin`), which `send` signs with. */
    adminSigner: admin,
    async stop(nodes: SimNode[]) {
      await stopSimNodes(nodes).catch(() => {});
      await plane.stop().catch(() => {});
      for (const c of conns) await c.close().catch(() => {});
      await h.nc.close().catch(() => {});
      await h.nats.stop();
      rmSync(h.dataDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
