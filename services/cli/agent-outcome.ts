// Whether an agent's answer means the action worked, and how to say what it did in a few words.
// An agent that answers `restart` with a service in crash-loop did reply, but the restart did not
// work: the verdict looks at the resulting state, not only at `ok`. Pure.
import type { NodeAction } from "../../schemas/mod.ts";
import { answerProblem, type AgentAnswer } from "./agent-request.ts";
import { CheckView, ServiceStatusView, StatusView } from "./agent-replies.ts";
import type { NodeOutcome } from "./fanout-tally.ts";
import { durationText, printable } from "./output.ts";

export type Verdict =
  | { ok: true; detail: string; value: unknown }
  | { ok: false; code: string; detail: string; value: unknown };

/** The states each service action should leave a service in. */
const WANTED: Partial<Record<NodeAction, readonly string[]>> = {
  start: ["starting", "running"],
  restart: ["starting", "running"],
  stop: ["stopped"],
};

/** "running (pid 1234)", "stopped", "crash-loop after 5 restarts (E_X: why)". */
export function serviceDetail(s: ServiceStatusView): string {
  const parts = [s.state];
  if (s.pid !== null) parts.push(`(pid ${s.pid})`);
  if (s.restarts > 0 && s.state !== "running") parts.push(`after ${s.restarts} restart${s.restarts === 1 ? "" : "s"}`);
  if (s.problem) parts.push(`(${s.problem.code}: ${printable(s.problem.message)})`);
  return parts.join(" ");
}

/** "3 services: 2 running, 1 backoff" */
export function statusDetail(s: StatusView): string {
  if (s.services.length === 0) return "no services";
  const counts = new Map<string, number>();
  for (const svc of s.services) counts.set(svc.state, (counts.get(svc.state) ?? 0) + 1);
  const by = [...counts].map(([state, n]) => `${n} ${state}`).join(", ");
  return `${s.services.length} service${s.services.length === 1 ? "" : "s"}: ${by}`;
}

/** "passed in 12 ms", "exit 1 after 30 ms: <last output line>", "timed out after 5s". */
export function checkDetail(c: CheckView): string {
  if (c.timed_out) return `timed out after ${durationText(c.ms)}`;
  const how = c.ok ? `passed in ${c.ms} ms` : `exit ${c.code ?? "?"} after ${c.ms} ms`;
  const last = c.output.trimEnd().split("\n").at(-1)?.trim();
  return !c.ok && last ? `${how}: ${printable(last)}` : how;
}

export function judge(action: NodeAction, result: unknown): Verdict {
  const bad = (what: string): Verdict => ({
    ok: false,
    code: "E_BAD_REPLY",
    detail: `the agent's ${action} result is not ${what}`,
    value: result,
  });
  switch (action) {
    case "status": {
      const s = StatusView.safeParse(result);
      return s.success ? { ok: true, detail: statusDetail(s.data), value: s.data } : bad("a node status");
    }
    case "exec-check": {
      const c = CheckView.safeParse(result);
      if (!c.success) return bad("a check result");
      if (c.data.ok) return { ok: true, detail: checkDetail(c.data), value: c.data };
      return {
        ok: false,
        code: c.data.timed_out ? "E_CHECK_TIMEOUT" : "E_CHECK_FAILED",
        detail: checkDetail(c.data),
        value: c.data,
      };
    }
    case "start":
    case "stop":
    case "restart": {
      const s = ServiceStatusView.safeParse(result);
      if (!s.success) return bad("a service status");
      const fine = WANTED[action]!.includes(s.data.state);
      return fine
        ? { ok: true, detail: serviceDetail(s.data), value: s.data }
        : { ok: false, code: s.data.problem?.code ?? "E_SERVICE_STATE", detail: serviceDetail(s.data), value: s.data };
    }
    default:
      return { ok: true, detail: "done", value: result };
  }
}

/** One row of a fan-out's table. */
export function outcomeOf(node: string, action: NodeAction, a: AgentAnswer, timeoutMs: number): NodeOutcome {
  if (a.kind === "ok") {
    const v = judge(action, a.result);
    return {
      node,
      result: v.ok ? "ok" : "failed",
      code: v.ok ? null : v.code,
      detail: v.detail,
      ms: a.ms,
      value: v.value,
    };
  }
  const { code, message } = answerProblem(node, action, a, timeoutMs);
  const detail =
    a.kind === "timed out"
      ? `no answer within ${durationText(timeoutMs)}`
      : a.kind === "no agent"
        ? "nothing listens on the node's command subject"
        : `${code}: ${message.startsWith(`${node}: `) ? message.slice(node.length + 2) : message}`;
  return { node, result: a.kind === "refused" ? "failed" : a.kind, code, detail, ms: a.ms };
}
