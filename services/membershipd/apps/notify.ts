// Tells a node its desired apps changed: a signed `apps.sync` (the rollout driver's key, which
// agents obey for `update` and `apps.sync` alone). It carries nothing but the node's name: the
// agent pulls node.apps and checks every manifest against its own keys. A node that is offline
// misses it and pulls when it connects; so a failed send is only logged.
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeCommandSubject } from "../../../schemas/mod.ts";
import { signCommand, systemInputs, type Signer } from "../../core/mod.ts";

export interface AppSyncNotifierOptions {
  nc: NatsConnection;
  driverKey: Signer;
  driverId: string;
  log(line: string): void;
  timeoutMs?: number;
}

export function appSyncNotifier(o: AppSyncNotifierOptions): (node: string) => void {
  return (node) => {
    const cmd = signCommand(
      { action: "apps.sync", args: { node }, actor: { id: o.driverId, key: o.driverKey.publicKey } },
      o.driverKey,
      systemInputs,
    );
    o.nc
      .request(nodeCommandSubject(node, "apps.sync"), JSON.stringify(cmd), { timeout: o.timeoutMs ?? 5000 })
      .catch((err: Error) =>
        o.log(`apps.sync to ${node} not answered (${err.message}); it reconciles when it connects`),
      );
  };
}
