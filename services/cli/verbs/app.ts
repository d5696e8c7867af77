// `unibus app …`: publish signed apps, install them on nodes after a permission review, upgrade,
// configure and remove them, and see what each node should run beside what it runs.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { canonicalJson, isDomainError, parseSettingAssignments, type ErrorCode } from "../../core/mod.ts";
import { buildApp, presignedApp, signedApp, uploadApp } from "../app.ts";
import { confirmed } from "../confirm.ts";
import { CliError, EXIT, need, table, usageError } from "../output.ts";
import { publisherTrustedKeys } from "../release.ts";
import { DRY_RUN } from "../dry-run.ts";
import { show, type Send } from "../session.ts";
import { defineVerb } from "../verb.ts";
import { statusRow } from "../app-status.ts";
import { LIMIT_FLAG, limitArg, PAGE_USAGE, pageText } from "./limit.ts";

const TARGET_FLAGS = {
  node: { type: "string" },
  selector: { type: "string" },
  all: { type: "boolean" },
} as const;
const TARGET_USAGE = "--node N | --selector k=v[,k=v] | --all";

/** --node N, --selector role=web,zone=eu (every label must match) or --all: exactly one. */
function targetOf(f: { node?: string | undefined; selector?: string | undefined; all?: boolean | undefined }) {
  const given = [f.node !== undefined, f.selector !== undefined, f.all === true].filter(Boolean).length;
  if (given !== 1) usageError(`give exactly one of ${TARGET_USAGE}`);
  if (f.node !== undefined) return { node: f.node };
  if (f.all) return { all: true };
  const selector: Record<string, string> = {};
  for (const part of f.selector!.split(",")) {
    const [k, v] = part.split("=");
    if (!k || v === undefined) usageError(`"${part}" is not label=value`);
    selector[k] = v;
  }
  return { selector };
}

/** `APP` or `APP@RANGE`. */
function appAndRange(spec: string): { app: string; range?: string } {
  const at = spec.indexOf("@");
  return at < 0 ? { app: spec } : { app: spec.slice(0, at), range: spec.slice(at + 1) };
}

function settingsOf(pairs: string[]): Record<string, unknown> {
  const s = parseSettingAssignments(pairs);
  if (isDomainError(s)) throw new CliError(s.code, s.message, EXIT.usage);
  return s;
}

type Plan = {
  nodes: {
    node: string;
    steps: {
      app: string;
      version: string;
      from_version: string | null;
      reason: string;
      review: string[];
      widens: string[];
    }[];
    error: { code: string; message: string } | null;
  }[];
  digest: string;
};

/** The review an operator reads before saying yes: each app once (its review is the same on every node), then where. */
export function reviewText(plan: Plan): string {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const n of plan.nodes)
    for (const s of n.steps) {
      const key = `${s.app}@${s.version}@${s.from_version}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const verb = s.from_version
        ? `upgrade ${s.app} ${s.from_version} → ${s.version}`
        : `install ${s.app} ${s.version}`;
      out.push(`${verb}${s.reason === "dependency" ? " (a dependency)" : ""}:`);
      out.push(...s.review.map((l) => `  - ${l}`));
      if (s.widens.length > 0) out.push("  it may now do more than before:", ...s.widens.map((l) => `  + ${l}`));
    }
  const nodes = plan.nodes.filter((n) => n.steps.length > 0).map((n) => n.node);
  out.push(
    `on ${nodes.length} node${nodes.length === 1 ? "" : "s"}: ${nodes.slice(0, 10).join(", ")}${nodes.length > 10 ? ", …" : ""}`,
  );
  return out.join("\n");
}

/**
 * The plan of `args` (app.plan), its refusal as one sentence, or its review printed and a yes
 * asked (an upgrade that widens nothing was reviewed when it was installed): the plan to write
 * with, or DRY_RUN.
 */
export async function reviewPlan(
  send: Send,
  args: Record<string, unknown> & { op: string },
  yes: boolean,
  question: string,
): Promise<Plan | typeof DRY_RUN> {
  const plan = (await send("app.plan", args)) as Plan | typeof DRY_RUN;
  if (plan === DRY_RUN) return DRY_RUN;
  const bad = plan.nodes.find((n) => n.error);
  if (bad?.error) throw new CliError(bad.error.code as ErrorCode, `${bad.error.message}; nothing was changed`);
  if (plan.nodes.every((n) => n.steps.length === 0)) return plan;
  process.stderr.write(`${reviewText(plan)}\n`);
  const asks = plan.nodes.some((n) => n.steps.some((s) => s.widens.length > 0 || s.from_version === null));
  if (asks && !(await confirmed(question, yes)))
    throw new CliError("E_CONFIRM_REQUIRED", "not confirmed; nothing was changed", EXIT.failed);
  return plan;
}

/** Plan, review, yes, then the write with the reviewed plan's digest (refused if the plan changed meanwhile). */
async function reviewed(send: Send, op: "install" | "upgrade", args: Record<string, unknown>, yes: boolean) {
  const question = op === "install" ? "install?" : "upgrade, with the wider permissions above?";
  const plan = await reviewPlan(send, { op, ...args }, yes, question);
  if (plan === DRY_RUN) return DRY_RUN;
  if (plan.nodes.every((n) => n.steps.length === 0))
    return { nodes: plan.nodes.map((n) => ({ node: n.node, steps: [], changed: 0 })) };
  return send(`app.${op}`, { ...args, plan: plan.digest });
}

const changedText = (r: any) =>
  r.nodes
    .map((n: any) =>
      n.steps.length === 0
        ? `${n.node}: nothing to change`
        : `${n.node}: ${n.steps.map((s: any) => `${s.app} ${s.from_version ? `${s.from_version} → ` : ""}${s.version}`).join(", ")}`,
    )
    .join("\n");

export const APP_VERBS = [
  defineVerb({
    words: ["app", "publish"],
    usage:
      "<dir> --key FILE [--version V] [--trusted-keys FILE] | <tarball> --manifest FILE [--signature FILE.minisig]",
    help:
      "tars <dir> (its unibus-app.json is the manifest), signs the manifest with the key in a 0600 file, checks the signature " +
      "against the trusted release keys (--trusted-keys FILE, else <data dir>/release-keys.pub), then uploads and publishes; " +
      "or publishes a manifest signed with minisign (app manifest, then minisign -S)",
    flags: {
      key: { type: "string" },
      version: { type: "string" },
      manifest: { type: "string" },
      signature: { type: "string" },
      "trusted-keys": { type: "string" },
    },
    dryRun: true,
    run: async ({ args, flags, o, send, connection }) => {
      const [input] = need(args, 1, "<dir|tarball>") as [string];
      const trusted = publisherTrustedKeys(o.dataDir, flags["trusted-keys"]);
      const app = flags.manifest
        ? presignedApp(input, flags.manifest, flags.signature, trusted)
        : signedApp(
            input,
            flags.key ?? usageError("--key FILE (a 0600 nkey seed or minisign secret key)"),
            flags.version,
            trusted,
          );
      if (!o.dryRun) await uploadApp(await connection(), app);
      return show(
        o,
        await send("app.publish", { manifest: app.manifest, signature: app.signature }),
        (r) => `published ${r.name} ${r.version} (${r.size} bytes)${r.published ? "" : " (already published)"}`,
      );
    },
  }),
  defineVerb({
    words: ["app", "manifest"],
    usage: "<dir> [--version V] [--out DIR]",
    help: "writes the app's tarball and canonical manifest, to sign with minisign -S -m and publish with --manifest",
    flags: { version: { type: "string" }, out: { type: "string" } },
    dryRun: "only writes files here; there is no command to print with --dry-run",
    run: async ({ args, flags, o }) => {
      const [dir] = need(args, 1, "<dir>") as [string];
      const { tarball, manifest } = buildApp(dir, flags.version);
      const base = join(flags.out ?? ".", `${manifest.name}-${manifest.version}`);
      writeFileSync(`${base}.tar.gz`, tarball);
      writeFileSync(`${base}.manifest.json`, canonicalJson(manifest));
      return show(
        o,
        { tarball: `${base}.tar.gz`, manifest: `${base}.manifest.json` },
        (r) => `${r.tarball}\n${r.manifest}`,
      );
    },
  }),
  defineVerb({
    words: ["app", "list"],
    usage: `[<name>] ${PAGE_USAGE}`,
    help: "the published apps and versions",
    flags: { ...LIMIT_FLAG },
    dryRun: true,
    run: async ({ args, flags, o, send }) =>
      show(o, await send("app.list", { ...(args[0] ? { name: args[0] } : {}), ...limitArg(flags) }), (r) =>
        pageText(r, table(r.items, ["name", "version", "key_id", "published_at", "description"])),
      ),
  }),
  defineVerb({
    words: ["app", "show"],
    usage: "<app>[@<version>]",
    help: "an app's signed manifest (the newest version unless one is named)",
    flags: {},
    dryRun: true,
    run: async ({ args, o, send }) => {
      const [spec] = need(args, 1, "<app>[@<version>]") as [string];
      const { app, range } = appAndRange(spec);
      return show(o, await send("app.show", { name: app, ...(range ? { version: range } : {}) }), (r) =>
        JSON.stringify(r.manifest, null, 2),
      );
    },
  }),
  defineVerb({
    words: ["app", "install"],
    usage: `<app>[@<range>] ${TARGET_USAGE} [--set KEY=VALUE]… [--yes]`,
    help: "prints the permission review (and any dependency installed first), and goes on after a yes",
    flags: { ...TARGET_FLAGS, set: { type: "string", multiple: true }, yes: { type: "boolean" } },
    dryRun: true,
    run: async ({ args, flags, o, send }) => {
      const [spec] = need(args, 1, "<app>[@<range>]") as [string];
      const a = { ...appAndRange(spec), ...targetOf(flags), settings: settingsOf(flags.set ?? []) };
      return show(o, await reviewed(send, "install", a, flags.yes ?? false), changedText);
    },
  }),
  defineVerb({
    words: ["app", "upgrade"],
    usage: `<app>[@<range>] ${TARGET_USAGE} [--yes]`,
    help: "to the newest version in the range; one that widens permissions shows exactly what widens and asks again",
    flags: { ...TARGET_FLAGS, yes: { type: "boolean" } },
    dryRun: true,
    run: async ({ args, flags, o, send }) => {
      const [spec] = need(args, 1, "<app>[@<range>]") as [string];
      return show(
        o,
        await reviewed(send, "upgrade", { ...appAndRange(spec), ...targetOf(flags) }, flags.yes ?? false),
        changedText,
      );
    },
  }),
  defineVerb({
    words: ["app", "remove"],
    usage: `<app> ${TARGET_USAGE} [--purge]`,
    help: "refused while an installed app depends on it; --purge deletes its volumes too",
    flags: { ...TARGET_FLAGS, purge: { type: "boolean" } },
    dryRun: true,
    run: async ({ args, flags, o, send }) => {
      const [app] = need(args, 1, "<app>") as [string];
      return show(
        o,
        await send("app.remove", { app, ...targetOf(flags), purge: flags.purge ?? false }),
        (r) => `${r.app} removed from ${r.nodes.join(", ")}${r.purge ? " (volumes purged)" : ""}`,
      );
    },
  }),
  defineVerb({
    words: ["app", "config", "set"],
    usage: `<app> KEY=VALUE… ${TARGET_USAGE}`,
    help: "checked against the app's settings schema; the agents restart the app with them",
    flags: { ...TARGET_FLAGS },
    dryRun: true,
    run: async ({ args, flags, o, send }) => {
      if (args.length < 2) usageError("expected <app> KEY=VALUE…");
      const [app, ...pairs] = args as [string, ...string[]];
      return show(o, await send("app.config", { app, ...targetOf(flags), settings: settingsOf(pairs) }), (r) =>
        r.nodes.map((n: any) => `${n.node}: ${JSON.stringify(n.settings)}`).join("\n"),
      );
    },
  }),
  defineVerb({
    words: ["app", "status"],
    usage: `[<app>] [--node N] ${PAGE_USAGE}`,
    help: "per node: the desired version beside the running one, and any drift",
    flags: { node: { type: "string" }, ...LIMIT_FLAG },
    dryRun: true,
    run: async ({ args, flags, o, send }) =>
      show(
        o,
        await send("app.status", {
          ...(args[0] ? { app: args[0] } : {}),
          ...(flags.node ? { node: flags.node } : {}),
          ...limitArg(flags),
        }),
        (r) =>
          pageText(
            r,
            table(r.items.map(statusRow), ["node", "app", "desired", "actual", "state", "drift", "limits", "reason"]),
          ),
      ),
  }),
];
