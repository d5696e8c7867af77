// `unibus node command <selector> <action> [--service S] [--concurrency 64] [--timeout 5s]`: the
// same action on every active node whose labels match, over one connection with up to
// `concurrency` signed requests in flight, each with its own timeout. The total time is about
// the slowest node's (a stalled node costs one timeout, not one per node behind it).
import type { NatsConnection } from "@nats-io/transport-node";
import type { NodeAction } from "../../schemas/mod.ts";
import { outcomeOf } from "./agent-outcome.ts";
import { readNodes } from "./agent-replies.ts";
import { agentArgs, agentLink, askAgent } from "./agent-request.ts";
import type { GlobalOptions } from "./context.ts";
import { DRY_RUN } from "./dry-run.ts";
import {
  addOutcome,
  allOk,
  emptyTally,
  progressDue,
  progressText,
  summaryText,
  type NodeOutcome,
  type Tally,
} from "./fanout-tally.ts";
import { mapLimited } from "./limited.ts";
import { listAll } from "./list-all.ts";
import { CliError, EXIT, need, print, table, usageError } from "./output.ts";
import { describeSelector, parseSelector, selects, type Selector } from "./selector.ts";
import type { Send } from "./session.ts";

export const DEFAULT_CONCURRENCY = 64;
export const DEFAULT_FANOUT_TIMEOUT_MS = 5000;
const MAX_CONCURRENCY = 4096;

/** What may fan out: `leave` and `logs` have their own verbs (leave also removes the node from the fleet). */
const FANOUT_ACTIONS: Record<string, NodeAction> = {
  status: "status",
  start: "start",
  stop: "stop",
  restart: "restart",
  check: "exec-check",
  "exec-check": "exec-check",
};
const WITH_SERVICE: ReadonlySet<NodeAction> = new Set(["start", "stop", "restart", "exec-check"]);

function fanoutAction(text: string): NodeAction {
  if (text === "leave")
    usageError("leave does not fan out: use unibus node leave <node>, which also removes the node from the fleet");
  if (text === "logs") usageError("logs does not fan out: use unibus node logs <node> <service>");
  return (
    FANOUT_ACTIONS[text] ??
    usageError(`"${text}" is not an action for node command (status, start, stop, restart, check)`)
  );
}

function concurrencyOf(text: string | undefined): number {
  if (text === undefined) return DEFAULT_CONCURRENCY;
  const n = Number(text);
  return /^\d+$/.test(text) && n >= 1 && n <= MAX_CONCURRENCY
    ? n
    : usageError(`--concurrency takes a whole number from 1 to ${MAX_CONCURRENCY}`);
}

interface FanoutPlan {
  selector: Selector;
  action: NodeAction;
  service: string | undefined;
  concurrency: number;
  timeoutMs: number;
}

/** Everything a usage error can be about is checked here, before any connection is made. */
export function planFanout(
  rest: string[],
  service: string | undefined,
  concurrency: string | undefined,
  given: number | undefined,
): FanoutPlan {
  const [selText, actionText] = need(
    rest,
    2,
    "<selector> <action>, e.g. node command role=web restart --service api",
  ) as [string, string];
  const parsed = parseSelector(selText);
  if (!parsed.ok) usageError(parsed.problem);
  const action = fanoutAction(actionText);
  if (WITH_SERVICE.has(action) && service === undefined) usageError(`${actionText} needs --service <service>`);
  if (!WITH_SERVICE.has(action) && service !== undefined) usageError(`${actionText} takes no --service`);
  agentArgs(action, "n", service); // the service name must be one the agent would accept
  return {
    selector: parsed.selector,
    action,
    service,
    concurrency: concurrencyOf(concurrency),
    timeoutMs: given ?? DEFAULT_FANOUT_TIMEOUT_MS,
  };
}

/** Active nodes the selector matches, from membershipd's node list. */
async function targets(send: Send, selector: Selector): Promise<string[] | typeof DRY_RUN> {
  const r = await listAll(send, "node.list");
  if (r === DRY_RUN) return DRY_RUN;
  return readNodes(r)
    .filter((n) => n.status === "active" && selects(selector, n))
    .map((n) => n.node);
}

/** The progress line: rewritten in place on a terminal (at most 10 times a second), a few plain lines otherwise. */
function progressWriter(quiet: boolean): { update(t: Tally): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  let shown = false;
  return {
    update(t) {
      if (quiet && !tty) return;
      if (!progressDue(t.done, t.total, tty)) return;
      const now = Date.now();
      if (tty && now - last < 100) return;
      last = now;
      shown = true;
      process.stderr.write(tty ? `\r\x1b[2K${progressText(t)}` : `${progressText(t)}\n`);
    },
    end() {
      if (tty && shown) process.stderr.write("\r\x1b[2K");
    },
  };
}

export async function nodeCommand(
  plan: FanoutPlan,
  o: GlobalOptions,
  send: Send,
  connection: () => Promise<NatsConnection>,
): Promise<number> {
  if (o.dryRun)
    usageError(
      "node command sends one command per node; --dry-run prints one: unibus --dry-run node <action> <node> …",
    );
  const { selector, action, service, concurrency, timeoutMs } = plan;
  const nodes = await targets(send, selector);
  if (nodes === DRY_RUN) return EXIT.ok;
  if (nodes.length === 0)
    throw new CliError("E_NO_MATCH", `no active node matches ${describeSelector(selector)}`, EXIT.failed);
  const link = await agentLink(o, connection);
  const progress = progressWriter(o.json);
  // Timed from the first request to the last answer: what the fan-out itself costs.
  const started = performance.now();
  let t = emptyTally(nodes.length);
  const outcomes = await mapLimited(
    nodes,
    concurrency,
    async (node): Promise<NodeOutcome> => {
      const args = service === undefined ? { node } : { node, service };
      return outcomeOf(node, action, await askAgent(link, node, action, args, timeoutMs), timeoutMs);
    },
    (out) => {
      t = addOutcome(t, out);
      progress.update(t);
    },
  );
  progress.end();
  const ms = Math.round(performance.now() - started);
  print(
    o.json,
    {
      ok: allOk(t),
      selector: describeSelector(selector),
      action,
      service: service ?? null,
      ms,
      counts: t,
      nodes: outcomes,
    },
    () =>
      `${table(outcomes as unknown as Record<string, unknown>[], ["node", "result", "detail"])}\n${summaryText(t, ms)}`,
  );
  return allOk(t) ? EXIT.ok : EXIT.failed;
}
