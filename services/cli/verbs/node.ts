// `unibus node …`: invites and enrollment, the fleet's nodes, their agents (status, services,
// logs, leave, fan-out), update locks, one-node updates and a genesis node's unlock.
import { readFileSync } from "node:fs";
import { nodeCommandSubject, parseInviteToken, type InviteToken } from "../../../schemas/mod.ts";
import { deriveWaitKey, normalizeCode, parseDurationMs, waitIdFor } from "../../core/mod.ts";
import { loadIdentity } from "../context.ts";
import { nodeUnlock } from "../genesis.ts";
import { DEFAULT_TIMEOUT_MS } from "../global-flags.ts";
import { nodeLogs } from "../logs.ts";
import { nodeCommand, planFanout } from "../node-command.ts";
import { nodeLeave } from "../node-leave.ts";
import { serviceVerb, type ServiceVerb } from "../node-service.ts";
import { nodeStatus } from "../node-status.ts";
import { need, table, usageError } from "../output.ts";
import { buildCommand, resultOf, sendCommand } from "../request.ts";
import { show } from "../session.ts";
import { defineVerb, type Verb } from "../verb.ts";
import { LIMIT_FLAG, limitArg, PAGE_USAGE, pageText } from "./limit.ts";

/** How long `node update` waits for the agent unless --timeout says: a download, a trial start and its health probe. */
const UPDATE_TIMEOUT_MS = 600_000;

/** "90s", "30m", "24h", "7d" → seconds: one unit, whole seconds. */
function parseDuration(text: string): number {
  const ms = /^\d+[smhd]$/.test(text.trim()) ? parseDurationMs(text) : null;
  if (ms === null) usageError(`"${text}" is not a duration like 30m, 24h or 7d`);
  return ms / 1000;
}

/** The invite token's parts; the CLI needs only its secret (the agent uses the rest). */
function decodeInviteToken(text: string): InviteToken {
  const r = parseInviteToken(text);
  return "token" in r ? r.token : usageError(r.problem);
}

/** The invite from --token-file, stdin (--token -) or, visible in the process list, --token TOKEN. */
function tokenInput(f: { "token-file"?: string | undefined; token?: string | undefined }): string {
  if (f["token-file"]) return readFileSync(f["token-file"], "utf8");
  if (f.token === "-") return readFileSync(0, "utf8");
  return f.token ?? usageError("--token-file FILE (or --token -) takes an invite token (unibus node invite)");
}

const ENROLLMENT_VERBS = [
  defineVerb({
    words: ["node", "invite"],
    usage: "[--expiry 24h] [--uses 1] [--note TEXT] [--overlay-ip IP]",
    help: "a one-time token for unibus-agent join (shown once); --overlay-ip pins the node's overlay address",
    flags: {
      expiry: { type: "string" },
      uses: { type: "string" },
      note: { type: "string" },
      "overlay-ip": { type: "string" },
    },
    dryRun: true,
    run: async ({ args, flags, o, send }) => {
      need(args, 0, "no arguments (flags --expiry, --uses, --note, --overlay-ip)");
      const invite = {
        expiry_s: parseDuration(flags.expiry ?? "24h"),
        uses: Number(flags.uses ?? 1),
        note: flags.note ?? "",
        ...(flags["overlay-ip"] === undefined ? {} : { overlay_ip: flags["overlay-ip"] }),
      };
      return show(
        o,
        await send("node.invite", invite),
        (r) =>
          `${r.token}\n\n# invite ${r.hash.slice(0, 12)}: ${r.uses} use(s), expires ${r.expires_at}. This token is shown once; on the node run:\n#   unibus-agent join --token <token>`,
      );
    },
  }),
  defineVerb({
    words: ["node", "invite", "revoke"],
    usage: "<hash-prefix>",
    help: "cuts the invite's bootstrap credential",
    flags: {},
    dryRun: true,
    run: async ({ args, o, send }) => {
      const [hash] = need(args, 1, "revoke <hash-prefix>");
      return show(
        o,
        await send("node.invite.revoke", { hash }),
        (r) => `revoked invite ${r.hash.slice(0, 12)}; its bootstrap credential is cut`,
      );
    },
  }),
  defineVerb({
    words: ["node", "invites"],
    usage: PAGE_USAGE,
    help: "hash prefix, note, expiry, uses left",
    flags: LIMIT_FLAG,
    dryRun: true,
    run: async ({ flags, o, send }) =>
      show(o, await send("node.invites", limitArg(flags)), (r) =>
        pageText(
          r,
          table(
            r.items.map((i: any) => ({ ...i, hash: i.hash.slice(0, 12) })),
            ["hash", "note", "expires_at", "uses", "uses_left", "revoked"],
          ),
        ),
      ),
  }),
  defineVerb({
    words: ["node", "enroll"],
    usage: "--code CODE --token-file FILE|--token -",
    help: "enroll a node waiting with unibus-agent enroll-wait",
    flags: { code: { type: "string" }, token: { type: "string" }, "token-file": { type: "string" } },
    dryRun: true,
    run: async ({ flags, o, send }) => {
      const code =
        normalizeCode(flags.code ?? "") ?? usageError("--code takes the 8-character code the waiting node prints");
      const token = decodeInviteToken(tokenInput(flags));
      const enroll = { wait_id: waitIdFor(code), wait_key: deriveWaitKey(code), secret: token.secret };
      return show(
        o,
        await send("node.enroll", enroll),
        (r) => `enrolled ${r.node} at ${r.address}; its configuration is on its way, sealed with the code`,
      );
    },
  }),
  defineVerb({
    words: ["node", "wait-bundle"],
    usage: "[--expiry 24h]",
    help: "the bundle unibus-agent enroll-wait starts with",
    flags: { expiry: { type: "string" } },
    dryRun: true,
    run: async ({ flags, o, send }) =>
      show(
        o,
        await send("node.wait-bundle", { expiry_s: parseDuration(flags.expiry ?? "24h") }),
        (r) =>
          `${r.bundle}\n\n# valid until ${r.expires_at}; on the node run: unibus-agent enroll-wait --bundle <bundle>`,
      ),
  }),
];

const FLEET_VERBS = [
  defineVerb({
    words: ["node", "list"],
    usage: PAGE_USAGE,
    help: "",
    flags: LIMIT_FLAG,
    dryRun: true,
    run: async ({ flags, o, send }) =>
      show(o, await send("node.list", limitArg(flags)), (r) =>
        pageText(r, table(r.items, ["node", "address", "status", "flow", "enrolled_at", "sign_key"])),
      ),
  }),
  defineVerb({
    words: ["node", "show"],
    usage: "<node>",
    help: "",
    flags: {},
    dryRun: true,
    run: async ({ args, o, send }) =>
      show(o, await send("node.show", { node: need(args, 1, "a node name")[0] }), (r) => JSON.stringify(r, null, 2)),
  }),
  defineVerb({
    words: ["node", "revoke"],
    usage: "<node> [--reason TEXT]",
    help: "",
    flags: { reason: { type: "string" } },
    dryRun: true,
    run: async ({ args, flags, o, send }) => {
      const [node] = need(args, 1, "a node name");
      return show(
        o,
        await send("node.revoke", { node, ...(flags.reason ? { reason: flags.reason } : {}) }),
        (r) => `${node} is ${r.status}; its identity is revoked and its connections are cut`,
      );
    },
  }),
  defineVerb({
    words: ["node", "leave"],
    usage: "<node>",
    help: "tells the node's agent to stop its services and forget its enrollment, then removes the node from the fleet (even if the agent does not answer)",
    flags: {},
    dryRun: true,
    // --timeout bounds the wait for the node's agent; membershipd's own steps (the revocation among
    // them) get at least the default, so a short agent wait cannot fail a leave membershipd carries out.
    run: ({ args, o, givenTimeoutMs, sendWithin, connection }) =>
      nodeLeave(args, givenTimeoutMs, o, sendWithin(Math.max(o.timeoutMs, DEFAULT_TIMEOUT_MS)), connection),
  }),
];

const SERVICE_HELP: Record<ServiceVerb, string> = {
  start: "starts one service on one node; exit 1 unless it ends up running",
  stop: "stops one service on one node; exit 1 unless it ends up stopped",
  restart: "restarts one service on one node; exit 1 unless it ends up running",
  check: "runs the service's health check on the node; exit 1 if it fails",
};

const AGENT_VERBS = [
  defineVerb({
    words: ["node", "logs"],
    usage: "<node> <service> [--lines 100] [--since 10m] [--follow]",
    help: "a service's output from UNIBUS_LOGS (admins); --since 2h, 30s, 1d or an ISO time",
    flags: { lines: { type: "string" }, since: { type: "string" }, follow: { type: "boolean" } },
    dryRun: "reads the log stream; there is no command to print with --dry-run",
    run: ({ args, flags, o, connection, send }) => nodeLogs(args, flags, o, connection, send),
  }),
  defineVerb({
    words: ["node", "status"],
    usage: "[<node> | --all]",
    help:
      "with a node, asks its agent: its sandbox and each service's state, pid, uptime, restarts, last exit; without an answer (2 s), " +
      "the last state it reported. Without one (or --all), every node's services as last reported to membershipd",
    flags: { all: { type: "boolean" } },
    dryRun: true,
    run: ({ args, flags, o, givenTimeoutMs, send, connection }) =>
      nodeStatus(args, flags.all ?? false, givenTimeoutMs, o, send, connection),
  }),
  ...(["start", "stop", "restart", "check"] as const).map((verb) =>
    defineVerb({
      words: ["node", verb],
      usage: "<node> <service>",
      help: SERVICE_HELP[verb],
      flags: {},
      dryRun: true,
      run: ({ args, o, givenTimeoutMs, connection }) => serviceVerb(verb, args, givenTimeoutMs, o, connection),
    }),
  ),
  defineVerb({
    words: ["node", "command"],
    usage: "<selector> <action> [--service S] [--concurrency 64]",
    help:
      "the action (status, start, stop, restart, check) on every active node the selector matches, in parallel; selector: role=web,zone=eu " +
      "(every label must match), name=<node>, or all; a table of ok / failed / timed out / no agent, exit 1 unless every node is ok",
    flags: { service: { type: "string" }, concurrency: { type: "string" } },
    dryRun: "sends one command per node; --dry-run prints one: unibus --dry-run node <action> <node> …",
    run: ({ args, flags, o, givenTimeoutMs, send, connection }) =>
      nodeCommand(planFanout(args, flags.service, flags.concurrency, givenTimeoutMs), o, send, connection),
  }),
];

const UPDATE_VERBS = [
  defineVerb({
    words: ["node", "lock"],
    usage: "<node> [--reason TEXT]",
    help: "a locked node is skipped by rollouts unless --force",
    flags: { reason: { type: "string" } },
    dryRun: true,
    run: async ({ args, flags, o, send }) =>
      show(
        o,
        await send("node.lock", { node: need(args, 1, "a node name")[0], reason: flags.reason ?? "" }),
        (r) => `${r.node} is locked: rollouts skip it unless forced`,
      ),
  }),
  defineVerb({
    words: ["node", "unlock"],
    usage: "<node> | --genesis <node> [--kex-seed FILE | --passphrase-file FILE]",
    help:
      "lifts a node's update lock. With --genesis, unlocks a genesis-locked node (a fleet under five nodes) with the operator's curve seed, " +
      "or with the passphrase its genesis key was made for (FILE, UNIBUS_GENESIS_PASSPHRASE, or a prompt)",
    flags: { genesis: { type: "boolean" }, "kex-seed": { type: "string" }, "passphrase-file": { type: "string" } },
    dryRun: true,
    run: async ({ args, flags, o, givenTimeoutMs, send, connection }) => {
      if (flags.genesis) {
        if (o.dryRun)
          usageError(
            "node unlock --genesis asks the node for its sealed key first; there is no command to print with --dry-run",
          );
        return nodeUnlock(args, flags, o, connection, givenTimeoutMs);
      }
      return show(
        o,
        await send("node.unlock", { node: need(args, 1, "a node name")[0] }),
        (r) => `${r.node} is unlocked`,
      );
    },
  }),
  defineVerb({
    words: ["node", "update"],
    usage: "<node> <name> <version>",
    help: "updates one node now (A/B slots, health probe, rollback on failure)",
    flags: {},
    dryRun: "builds its command from membershipd's copy of the release; there is no command to print with --dry-run",
    run: async ({ args, o, givenTimeoutMs, send, connection }) => {
      const [node, name, version] = need(args, 3, "<node> <release name> <version>");
      const release = await send("release.show", { name, version });
      const cmd = buildCommand(loadIdentity(o), o.as, "update", {
        node,
        manifest: release.manifest,
        signature: release.signature,
      });
      const reply = resultOf(
        await sendCommand(
          await connection(),
          nodeCommandSubject(node!, "update"),
          cmd,
          givenTimeoutMs ?? UPDATE_TIMEOUT_MS,
        ),
      );
      return show(o, reply, (r) => `${node}: ${r.release} ${r.version} ${r.outcome} in slot ${r.slot}`);
    },
  }),
];

export const NODE_VERBS: Verb[] = [...ENROLLMENT_VERBS, ...FLEET_VERBS, ...AGENT_VERBS, ...UPDATE_VERBS];
