// `unibus node …`: invites, enrollment by code, the fleet's nodes, and their agents.
import { readFileSync } from "node:fs";
import { parseInviteToken, type InviteToken } from "../../schemas/mod.ts";
import { deriveWaitKey, normalizeCode, parseDurationMs, waitIdFor } from "../core/mod.ts";
import type { GlobalOptions } from "./context.ts";
import { need, table, usageError } from "./output.ts";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeLogs } from "./logs.ts";
import { nodeCommand, planFanout } from "./node-command.ts";
import { nodeLeave } from "./node-leave.ts";
import { serviceVerb } from "./node-service.ts";
import { nodeStatus } from "./node-status.ts";
import type { Flags, Send, show as Show } from "./main.ts";

/** "90s", "30m", "24h", "7d" → seconds: one unit, whole seconds. */
export function parseDuration(text: string): number {
  const ms = /^\d+[smhd]$/.test(text.trim()) ? parseDurationMs(text) : null;
  if (ms === null) usageError(`"${text}" is not a duration like 30m, 24h or 7d`);
  return ms / 1000;
}

/** The invite token's parts; the CLI needs only its secret (the agent uses the rest). */
export function decodeInviteToken(text: string): InviteToken {
  const r = parseInviteToken(text);
  return "token" in r ? r.token : usageError(r.problem);
}

/** The invite from --token-file, stdin (--token -) or, visible in the process list, --token TOKEN. */
function tokenInput(f: Flags): string {
  if (f["token-file"]) return readFileSync(f["token-file"], "utf8");
  if (f.token === "-") return readFileSync(0, "utf8");
  return f.token ?? usageError("--token-file FILE (or --token -) takes an invite token (unibus node invite)");
}

export async function nodeVerb(verb: string, rest: string[], f: Flags, o: GlobalOptions, send: Send, show: typeof Show, connection?: () => Promise<NatsConnection>): Promise<number> {
  const limit = f.limit ? { limit: Number(f.limit) } : {};
  // --timeout, when given, overrides each agent action's own default.
  const given = f.timeout === undefined ? undefined : o.timeoutMs;
  const conn = () => connection ?? usageError(`node ${verb} needs a connection`);
  switch (verb) {
    case "invite": {
      if (rest[0] === "revoke") {
        const [, hash] = need(rest, 2, "revoke <hash-prefix>");
        return show(o, await send("node.invite.revoke", { hash }), (r) => `revoked invite ${r.hash.slice(0, 12)}; its bootstrap credential is cut`);
      }
      need(rest, 0, "no arguments (flags --expiry, --uses, --note)");
      const args = { expiry_s: parseDuration(f.expiry ?? "24h"), uses: Number(f.uses ?? 1), note: f.note ?? "" };
      return show(o, await send("node.invite", args), (r) =>
        `${r.token}\n\n# invite ${r.hash.slice(0, 12)}: ${r.uses} use(s), expires ${r.expires_at}. This token is shown once; on the node run:\n#   unibus-agent join --token <token>`);
    }
    case "invites":
      return show(o, await send("node.invites", limit), (r) =>
        table(r.items.map((i: any) => ({ ...i, hash: i.hash.slice(0, 12) })), ["hash", "note", "expires_at", "uses", "uses_left", "revoked"]));
    case "enroll": {
      const code = normalizeCode(f.code ?? "") ?? usageError("--code takes the 8-character code the waiting node prints");
      const token = decodeInviteToken(tokenInput(f));
      const args = { wait_id: waitIdFor(code), wait_key: deriveWaitKey(code), secret: token.secret };
      return show(o, await send("node.enroll", args), (r) => `enrolled ${r.node} at ${r.address}; its configuration is on its way, sealed with the code`);
    }
    case "wait-bundle":
      return show(o, await send("node.wait-bundle", { expiry_s: parseDuration(f.expiry ?? "24h") }), (r) =>
        `${r.bundle}\n\n# valid until ${r.expires_at}; on the node run: unibus-agent enroll-wait --bundle <bundle>`);
    case "list":
      return show(o, await send("node.list", limit), (r) => table(r.items, ["node", "address", "status", "flow", "enrolled_at", "sign_key"]));
    case "show":
      return show(o, await send("node.show", { node: need(rest, 1, "a node name")[0] }), (r) => JSON.stringify(r, null, 2));
    case "leave":
      return nodeLeave(rest, given, o, send, conn());
    case "revoke": {
      const [node] = need(rest, 1, "a node name");
      return show(o, await send("node.revoke", { node, ...(f.reason ? { reason: f.reason } : {}) }), (r) => `${node} is ${r.status}; its identity is revoked and its connections are cut`);
    }
    case "logs":
      if (o.dryRun) usageError("node logs reads the log stream; there is no command to print with --dry-run");
      return nodeLogs(rest, f, o, conn(), send);
    case "status":
      return nodeStatus(rest, f.all ?? false, given, o, send, conn());
    case "start": case "stop": case "restart": case "check":
      return serviceVerb(verb, rest, given, o, conn());
    case "command":
      return nodeCommand(planFanout(rest, f.service, f.concurrency, given), o, send, conn());
    default:
      return usageError(`unknown verb "node ${verb}"`);
  }
}
