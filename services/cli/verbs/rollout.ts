// `unibus rollout …`: a release to many nodes, canary first, then batches (membershipd drives it).
import { LIMIT_FLAG, limitArg, PAGE_USAGE, pageText } from "./limit.ts";
import { need, table, usageError } from "../output.ts";
import { show } from "../session.ts";
import { defineVerb } from "../verb.ts";
import { DRY_RUN } from "../dry-run.ts";
import { EXIT } from "../output.ts";
import type { Send } from "../session.ts";
import { reviewPlan } from "./app.ts";

/** An app rollout's review: the plan over every node the selector matches, printed, then a yes. */
async function reviewedRollout(
  send: Send,
  app: string,
  version: string,
  target: { selector: Record<string, string>; all: boolean },
  yes: boolean,
) {
  const where = target.all ? { all: true } : { selector: target.selector };
  return reviewPlan(send, { op: "deploy", app, range: `=${version}`, ...where }, yes, "start the rollout?");
}

/** --selector role=web,zone=eu (every label must match), or --all (also --selector all). */
function rolloutTargets(text: string | undefined, all: boolean): { selector: Record<string, string>; all: boolean } {
  if (all || text === "all") return { selector: {}, all: true };
  if (!text) usageError("--selector role=web,zone=eu (every label must match) or --all");
  const selector: Record<string, string> = {};
  for (const part of text.split(",")) {
    const [k, v] = part.split("=");
    if (!k || v === undefined) usageError(`"${part}" is not label=value`);
    selector[k] = v;
  }
  return { selector, all: false };
}

const statusText = (r: any) =>
  `${r.rollout}: ${r.name} ${r.version} ${r.state}${r.reason ? ` (${r.reason})` : ""}, batches started ${r.batches_started}, failures ${r.failures}/${r.max_failures}\n\n` +
  table(r.nodes, ["node", "rollout_state", "batch", "version", "slot", "state", "attempts", "code"]);

export const ROLLOUT_VERBS = [
  defineVerb({
    words: ["rollout", "start"],
    usage:
      "[<name>] <version> --selector role=web|--all [--canary 1] [--batch 10%|N] [--max-failures 1] [--force] [--release NAME | --app APP [--yes]]",
    help:
      "the release is the one published with that version (--release NAME, or rollout start <name> <version>, when several are); " +
      "canary first, then batches; --force includes locked nodes; --app APP rolls out an app version instead " +
      "(installed where absent, upgraded where present), after its permission review and a yes",
    flags: {
      selector: { type: "string" },
      all: { type: "boolean" },
      canary: { type: "string" },
      batch: { type: "string" },
      "max-failures": { type: "string" },
      force: { type: "boolean" },
      release: { type: "string" },
      app: { type: "string" },
      yes: { type: "boolean" },
    },
    dryRun: true,
    run: async ({ args, flags: f, o, send }) => {
      // `rollout start <version>` (membershipd finds the release, or --release names it) or `rollout start <name> <version>`.
      if (args.length < 1 || args.length > 2) usageError("expected <version> (or <release name> <version>)");
      const [name, version] = args.length === 2 ? args : [f.release, args[0]];
      if (args.length === 2 && f.release !== undefined && f.release !== name)
        usageError(`--release ${f.release} and the release name ${name} differ`);
      const batch = f.batch === undefined ? "10%" : /%$/.test(f.batch) ? f.batch : Number(f.batch);
      const start = {
        ...(name !== undefined ? { name } : {}),
        version,
        ...rolloutTargets(f.selector, f.all ?? false),
        batch,
        force: f.force ?? false,
        ...(f.canary !== undefined ? { canary: Number(f.canary) } : {}),
        ...(f["max-failures"] !== undefined ? { max_failures: Number(f["max-failures"]) } : {}),
      };
      if (f.app !== undefined) {
        if (args.length !== 1 || f.release !== undefined) usageError("an app rollout takes <version> and --app APP");
        const app = await reviewedRollout(
          send,
          f.app,
          version!,
          rolloutTargets(f.selector, f.all ?? false),
          f.yes ?? false,
        );
        if (app === DRY_RUN) return EXIT.ok;
        Object.assign(start, { name: f.app, app: true, plan: app.digest });
      }
      return show(
        o,
        await send("rollout.start", start),
        (r) =>
          `rollout ${r.rollout} of ${r.name} ${r.version}: ${r.nodes} nodes in batches of ${r.batch}${r.skipped.length ? `, skipped ${r.skipped.map((s: any) => s.node).join(", ")} (locked)` : ""}\n# follow it: unibus rollout status ${r.rollout}`,
      );
    },
  }),
  defineVerb({
    words: ["rollout", "status"],
    usage: "<id>",
    help: "per node: version, slot, state, attempts",
    flags: {},
    dryRun: true,
    run: async ({ args, o, send }) =>
      show(o, await send("rollout.status", { rollout: need(args, 1, "a rollout id")[0] }), statusText),
  }),
  defineVerb({
    words: ["rollout", "list"],
    usage: PAGE_USAGE,
    help: "",
    flags: LIMIT_FLAG,
    dryRun: true,
    run: async ({ flags, o, send }) =>
      show(o, await send("rollout.list", limitArg(flags)), (r) =>
        pageText(
          r,
          table(r.items, ["rollout", "name", "version", "state", "nodes", "failures", "started_at", "reason"]),
        ),
      ),
  }),
  defineVerb({
    words: ["rollout", "resume"],
    usage: "<id>",
    help: "",
    flags: {},
    dryRun: true,
    run: async ({ args, o, send }) =>
      show(
        o,
        await send("rollout.resume", { rollout: need(args, 1, "a rollout id")[0] }),
        (r) => `resumed ${r.rollout}`,
      ),
  }),
  defineVerb({
    words: ["rollout", "abort"],
    usage: "<id> [--reason TEXT]",
    help: "no further node is sent the update",
    flags: { reason: { type: "string" } },
    dryRun: true,
    run: async ({ args, flags, o, send }) => {
      const [rollout] = need(args, 1, "a rollout id");
      return show(
        o,
        await send("rollout.abort", { rollout, ...(flags.reason ? { reason: flags.reason } : {}) }),
        (r) => `aborted ${r.rollout}: no further node is sent the update`,
      );
    },
  }),
];
