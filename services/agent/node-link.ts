// A one-off connection as the node itself, for the agent's commands that run beside its daemon
// (`vault adopt-key`, `wg update`): its creds and pinned CA, and `ask` for signed membershipd actions.
import type { NatsConnection } from "@nats-io/transport-node";
import { Reply, nodeActorId } from "../../schemas/mod.ts";
import { connectNats } from "../bus/mod.ts";
import { inboxPrefix, signCommand, systemInputs } from "../core/mod.ts";
import type { NodeStore } from "./node-store.ts";
import { AgentError } from "./run/options.ts";

export async function connectAsNode(store: NodeStore, timeoutMs: number, purpose: string) {
  const config = store.enrolled();
  if (!config) throw new AgentError("E_NOT_ENROLLED", `${store.dir} holds no enrollment; run unibus-agent join first`);
  const { signer } = store.keys();
  const nc: NatsConnection = await connectNats({
    servers: config.urls,
    name: `unibus-agent ${config.node} ${purpose}`,
    creds: store.creds(),
    caFile: store.path("ca"),
    inboxPrefix: inboxPrefix(signer.publicKey),
  });
  const ask = async (action: string, args: Record<string, unknown>): Promise<Reply> => {
    const cmd = signCommand(
      { action, args, actor: { id: nodeActorId(config.node), key: signer.publicKey } },
      signer,
      systemInputs,
    );
    return Reply.parse(
      (await nc.request(`unibus.cmd.membership.${action}`, JSON.stringify(cmd), { timeout: timeoutMs })).json(),
    );
  };
  const request = async (subject: string, payload: string, timeout: number) =>
    (await nc.request(subject, payload, { timeout })).json();
  return { nc, node: config.node, signer, ask, request };
}
