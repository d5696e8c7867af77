// `unibus node leave <node>`: a graceful leave. The agent is told first (it stops its services,
// reports, and forgets its enrollment) while its identity still works; then membershipd records
// NodeLeft and revokes the identity. An agent that does not answer does not keep a node in the
// fleet: the operator is told, and the node is removed anyway.
import type { NatsConnection } from "@nats-io/transport-node";
import { outcomeOf } from "./agent-outcome.ts";
import { NodeView } from "./agent-replies.ts";
import { agentArgs, agentLink, agentTimeoutMs, askAgent } from "./agent-request.ts";
import type { GlobalOptions } from "./context.ts";
import { DRY_RUN, printAgentDryRun } from "./dry-run.ts";
import { EXIT, need, print } from "./output.ts";
import type { Send } from "./session.ts";

interface AgentPart {
  result: "ok" | "failed" | "timed out" | "no agent" | "skipped";
  detail: string;
}

async function tellAgent(
  node: string,
  given: number | undefined,
  o: GlobalOptions,
  connection: () => Promise<NatsConnection>,
): Promise<AgentPart> {
  const timeoutMs = agentTimeoutMs("leave", given);
  const a = await askAgent(await agentLink(o, connection), node, "leave", agentArgs("leave", node), timeoutMs);
  if (a.kind === "ok") return { result: "ok", detail: "stopped its services and forgot its enrollment" };
  const out = outcomeOf(node, "leave", a, timeoutMs);
  return { result: out.result, detail: out.detail };
}

export async function nodeLeave(
  rest: string[],
  given: number | undefined,
  o: GlobalOptions,
  send: Send,
  connection: () => Promise<NatsConnection>,
): Promise<number> {
  const [node] = need(rest, 1, "a node name") as [string];
  if (o.dryRun) {
    printAgentDryRun(o, node, "leave", agentArgs("leave", node));
    await send("node.leave", { node });
    return EXIT.ok;
  }
  // Only an active node's agent is told to forget its enrollment: otherwise membershipd's refusal
  // (no such node, already gone) would leave an agent that forgot a node the fleet still lists.
  const shown = NodeView.safeParse(await send("node.show", { node }));
  const agent: AgentPart =
    shown.success && shown.data.status === "active"
      ? await tellAgent(node, given, o, connection)
      : { result: "skipped", detail: `the node is ${shown.success ? shown.data.status : "not readable"}` };
  if (agent.result !== "ok" && agent.result !== "skipped" && !o.json) {
    process.stderr.write(
      `unibus: ${node}'s agent did not take the leave (${agent.result}: ${agent.detail}); removing ${node} from the fleet anyway\n`,
    );
  }
  const r = await send("node.leave", { node });
  if (r === DRY_RUN) return EXIT.ok;
  print(
    o.json,
    { ...r, node, agent },
    () =>
      `${agent.result === "ok" ? `${node}'s agent ${agent.detail}\n` : ""}${node} is ${r.status}; its identity is revoked and its connections are cut`,
  );
  return EXIT.ok;
}
