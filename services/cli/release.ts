// `unibus release …` and `unibus rollout …`, `unibus node lock|unlock|update`. A release is built
// from a directory (tarred by the system tar, reproducibly) or taken as a tarball; its manifest is
// signed with a key read from a 0600 file (an nkey seed or an unencrypted minisign secret key),
// or signed beforehand with the minisign tool (`release manifest`, then `minisign -S`, then
// `release publish --manifest --signature`). The tarball goes into the object store first, then
// the manifest and signature are published as an event.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { ReleaseManifest, ReleaseSpec, nodeCommandSubject, type ReleaseManifest as Manifest } from "../../schemas/mod.ts";
import { canonicalJson, manifestBytes, parseSigningKey, publicKeyLine, publicKeyOf, releaseObjectName, sha256Hex, signMinisign } from "../core/mod.ts";
import { readSecretFile } from "../bus/mod.ts";
import { putReleaseObject } from "../bus/release-objects.ts";
import type { GlobalOptions } from "./context.ts";
import { CliError, EXIT, need, table, usageError } from "./output.ts";
import { buildCommand, resultOf, sendCommand } from "./request.ts";
import { loadIdentity } from "./context.ts";
import type { Flags, Send, show as Show } from "./main.ts";

const SPEC_FILE = "unibus-release.json";

interface Built { tarball: Uint8Array; manifest: Manifest }

/** The tarball (a directory is tarred: sorted, owner 0, mtime 0) and its manifest. */
export function buildRelease(input: string, f: Flags): Built {
  if (!existsSync(input)) usageError(`${input} does not exist`);
  const isDir = statSync(input).isDirectory();
  const tarball = isDir
    ? new Uint8Array(execFileSync("tar", ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "--exclude", `./${SPEC_FILE}`, "-czf", "-", "-C", input, "."], { maxBuffer: 512 * 1024 * 1024 }))
    : new Uint8Array(readFileSync(input));
  const specPath = f.spec ?? (isDir && existsSync(join(input, SPEC_FILE)) ? join(input, SPEC_FILE) : null);
  const raw = specPath ? JSON.parse(readFileSync(specPath, "utf8")) : {};
  const { name: specName, min_agent_version, notes, ...rest } = raw as Record<string, unknown>;
  const spec = ReleaseSpec.safeParse(rest);
  if (!spec.success) usageError(`${specPath}: ${spec.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const name = f.name ?? (specName as string | undefined) ?? basename(input).replace(/\.(tar\.gz|tgz|tar)$/, "").toLowerCase();
  const version = f.version ?? usageError("--version V names the release's version (1.2.3)");
  const manifest = ReleaseManifest.safeParse({
    v: 1, name, version, sha256: sha256Hex(tarball), size: tarball.length, min_agent_version: (min_agent_version as string | undefined) ?? "0.0.1",
    created_at: new Date().toISOString(), notes: f.notes ?? (notes as string | undefined) ?? "", spec: spec.data,
  });
  if (!manifest.success) usageError(manifest.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
  return { tarball, manifest: manifest.data };
}

/** The signing key from a 0600 file: never from argv, never printed. */
function signingKey(path: string) {
  let text: string;
  try {
    text = readSecretFile(path).toString("utf8");
  } catch (err) {
    throw new CliError((err as { code?: string }).code ?? "E_SECRET_MISSING", (err as Error).message, EXIT.usage);
  }
  const k = parseSigningKey(text);
  if ("code" in k) throw new CliError(k.code, `${path}: ${k.message}`, EXIT.usage);
  return k;
}

/** Adds the tarball under its SHA-256 unless it is there (an object is never replaced). */
async function upload(nc: NatsConnection, tarball: Uint8Array, m: Manifest): Promise<void> {
  await putReleaseObject(nc, releaseObjectName(m.sha256), tarball, `${m.name} ${m.version}`);
}

export async function releaseVerb(verb: string, rest: string[], f: Flags, o: GlobalOptions, send: Send, show: typeof Show, connection: () => Promise<NatsConnection>): Promise<number> {
  switch (verb) {
    case "manifest": {
      const [input] = need(rest, 1, "<dir|tarball>");
      const { tarball, manifest } = buildRelease(input!, f);
      const out = f.out ?? ".";
      const base = join(out, `${manifest.name}-${manifest.version}`);
      writeFileSync(`${base}.tar.gz`, tarball);
      // The exact bytes a signature covers: sign this file with minisign -S -m.
      writeFileSync(`${base}.manifest.json`, canonicalJson(manifest));
      return show(o, { tarball: `${base}.tar.gz`, manifest: `${base}.manifest.json`, sha256: manifest.sha256 }, (r) =>
        `wrote ${r.tarball} and ${r.manifest}\n# sign: minisign -S -m ${r.manifest}\n# then: unibus release publish ${r.tarball} --manifest ${r.manifest} --signature ${r.manifest}.minisig`);
    }
    case "publish": {
      const [input] = need(rest, 1, "<dir|tarball>");
      let tarball: Uint8Array;
      let manifest: Manifest;
      let signature: string;
      if (f.manifest) {
        tarball = new Uint8Array(readFileSync(input!));
        const text = readFileSync(f.manifest, "utf8");
        const parsed = ReleaseManifest.safeParse(JSON.parse(text));
        if (!parsed.success) usageError(`${f.manifest} is not a release manifest`);
        manifest = parsed.data;
        if (canonicalJson(manifest) !== text) usageError(`${f.manifest} is not in canonical form (make it with unibus release manifest and sign it unchanged)`);
        if (sha256Hex(tarball) !== manifest.sha256) throw new CliError("E_RELEASE_TAMPERED", `${input} is not the tarball ${f.manifest} describes (SHA-256 differs)`);
        signature = readFileSync(f.signature ?? `${f.manifest}.minisig`, "utf8");
      } else {
        const key = signingKey(f.key ?? usageError("--key FILE (a 0600 nkey seed or minisign secret key), or --manifest and --signature"));
        ({ tarball, manifest } = buildRelease(input!, f));
        signature = signMinisign(manifestBytes(manifest), key, `unibus release ${manifest.name} ${manifest.version} sha256:${manifest.sha256}`);
      }
      if (!o.dryRun) await upload(await connection(), tarball, manifest);
      return show(o, await send("release.publish", { manifest, signature }), (r) =>
        `published ${r.name} ${r.version} (${r.size} bytes, sha256 ${r.sha256.slice(0, 16)}…)${r.published ? "" : " (already published)"}`);
    }
    case "list":
      return show(o, await send("release.list", { ...(f.name ? { name: f.name } : {}) }), (r) => table(r.items, ["name", "version", "size", "key_id", "published_at"]));
    case "show": {
      const [name, version] = need(rest, 2, "<name> <version>");
      return show(o, await send("release.show", { name, version }), (r) => JSON.stringify(r, null, 2));
    }
    case "key": {
      // The public half for agents' release-keys.pub.
      const [path] = need(rest, 1, "<key file>");
      const k = signingKey(path!);
      return show(o, { key_id: k.keyId, public_key: publicKeyLine(publicKeyOf(k)) }, (r) => `untrusted comment: minisign public key ${r.key_id}\n${r.public_key}`);
    }
    default:
      return usageError(`unknown verb "release ${verb}"`);
  }
}

function parseSelector(text: string | undefined, all: boolean): { selector: Record<string, string>; all: boolean } {
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

export async function rolloutVerb(verb: string, rest: string[], f: Flags, o: GlobalOptions, send: Send, show: typeof Show): Promise<number> {
  switch (verb) {
    case "start": {
      // `rollout start <version>` (the issue's form; membershipd finds the release, or --release
      // names it) or `rollout start <name> <version>`.
      if (rest.length < 1 || rest.length > 2) usageError("expected <version> (or <release name> <version>)");
      const [name, version] = rest.length === 2 ? rest : [f.release, rest[0]];
      if (rest.length === 2 && f.release !== undefined && f.release !== name) usageError(`--release ${f.release} and the release name ${name} differ`);
      const batch = f.batch === undefined ? "10%" : /%$/.test(f.batch) ? f.batch : Number(f.batch);
      const args = {
        ...(name !== undefined ? { name } : {}), version, ...parseSelector(f.selector, f.all ?? false), batch, force: f.force ?? false,
        ...(f.canary !== undefined ? { canary: Number(f.canary) } : {}), ...(f["max-failures"] !== undefined ? { max_failures: Number(f["max-failures"]) } : {}),
      };
      return show(o, await send("rollout.start", args), (r) =>
        `rollout ${r.rollout} of ${r.name} ${r.version}: ${r.nodes} nodes in batches of ${r.batch}${r.skipped.length ? `, skipped ${r.skipped.map((s: any) => s.node).join(", ")} (locked)` : ""}\n# follow it: unibus rollout status ${r.rollout}`);
    }
    case "status": return show(o, await send("rollout.status", { rollout: need(rest, 1, "a rollout id")[0] }), statusText);
    case "list": return show(o, await send("rollout.list", {}), (r) => table(r.items, ["rollout", "name", "version", "state", "nodes", "failures", "started_at", "reason"]));
    case "resume": return show(o, await send("rollout.resume", { rollout: need(rest, 1, "a rollout id")[0] }), (r) => `resumed ${r.rollout}`);
    case "abort": {
      const [rollout] = need(rest, 1, "a rollout id");
      return show(o, await send("rollout.abort", { rollout, ...(f.reason ? { reason: f.reason } : {}) }), (r) => `aborted ${r.rollout}: no further node is sent the update`);
    }
    default:
      return usageError(`unknown verb "rollout ${verb}"`);
  }
}

/** `node lock|unlock <node>` and `node update <node> <name> <version>` (one node, now, no rollout). */
export async function nodeUpdateVerb(verb: string, rest: string[], f: Flags, o: GlobalOptions, send: Send, show: typeof Show, connection: () => Promise<NatsConnection>): Promise<number> {
  if (verb === "lock") return show(o, await send("node.lock", { node: need(rest, 1, "a node name")[0], reason: f.reason ?? "" }), (r) => `${r.node} is locked: rollouts skip it unless forced`);
  if (verb === "unlock") return show(o, await send("node.unlock", { node: need(rest, 1, "a node name")[0] }), (r) => `${r.node} is unlocked`);
  const [node, name, version] = need(rest, 3, "<node> <release name> <version>");
  const release = await send("release.show", { name, version });
  const cmd = buildCommand(loadIdentity(o), o.as, "update", { node, manifest: release.manifest, signature: release.signature });
  const timeout = f.timeout === undefined ? 600_000 : o.timeoutMs;
  const reply = resultOf(await sendCommand(await connection(), nodeCommandSubject(node!, "update"), cmd, timeout));
  return show(o, reply, (r) => `${node}: ${r.release} ${r.version} ${r.outcome} in slot ${r.slot}`);
}
