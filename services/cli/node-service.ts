// `unibus node start|stop|restart|check <node> <service>`: one signed request to the node's agent,
// one sentence about the service afterwards. A reply whose service is not in the state the action
// asked for (a restart that ends in crash-loop, a failing check) exits 1 like a refusal does.
import type { NatsConnection } from "@nats-io/transport-node";
import type { NodeAction } from "../../schemas/mod.ts";
import { judge } from "./agent-outcome.ts";
import type { CheckView } from "./agent-replies.ts";
import { agentArgs, agentLink, agentTimeoutMs, answerError, askAgent } from "./agent-request.ts";
import type { GlobalOptions } from "./context.ts";
import { printAgentDryRun } from "./dry-run.ts";
import { CliError, EXIT, need, print, printable } from "./output.ts";

export type ServiceVerb = "start" | "stop" | "restart" | "check";

const ACTION: Record<ServiceVerb, NodeAction> = {
  start: "start",
  stop: "stop",
  restart: "restart",
  check: "exec-check",
};
const DONE: Record<ServiceVerb, string> = { start: "started", stop: "stopped", restart: "restarted", check: "checked" };

function sentence(verb: ServiceVerb, node: string, service: string, detail: string): string {
  return verb === "check"
    ? `check of ${service} on ${node} ${detail}`
    : `${DONE[verb]} ${service} on ${node}: ${detail}`;
}

/** The check's own output, shown before its verdict (a failing check's output is the why). */
function checkOutput(value: unknown): string {
  const raw = (value as Partial<CheckView> | null)?.output;
  const out = typeof raw === "string" ? raw.trimEnd() : "";
  return out
    ? out
        .split("\n")
        .map((l) => `  ${printable(l)}`)
        .join("\n") + "\n"
    : "";
}

export async function serviceVerb(
  verb: ServiceVerb,
  rest: string[],
  given: number | undefined,
  o: GlobalOptions,
  connection: () => Promise<NatsConnection>,
): Promise<number> {
  const [node, service] = need(rest, 2, "<node> <service>") as [string, string];
  const action = ACTION[verb];
  const args = agentArgs(action, node, service);
  if (o.dryRun) {
    printAgentDryRun(o, node, action, args);
    return EXIT.ok;
  }
  const timeoutMs = agentTimeoutMs(action, given);
  const a = await askAgent(await agentLink(o, connection), node, action, args, timeoutMs);
  if (a.kind !== "ok") throw answerError(node, action, a, timeoutMs);
  const v = judge(action, a.result);
  if (o.json) {
    // Scripts get the agent's result either way; the exit code carries the verdict.
    print(true, v.value, () => "");
    return v.ok ? EXIT.ok : EXIT.failed;
  }
  if (verb === "check") process.stdout.write(checkOutput(v.value));
  if (v.ok) {
    print(false, null, () => sentence(verb, node, service, v.detail));
    return EXIT.ok;
  }
  const what =
    verb === "check"
      ? `check of ${service} on ${node} failed: ${v.detail}`
      : `${service} on ${node} is ${v.detail} after ${verb}`;
  throw CliError.fromAnswer(v.code, what, EXIT.failed);
}
