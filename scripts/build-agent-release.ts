// The agent's own code as a release: `npx tsx scripts/build-agent-release.ts --out DIR --version V`
// bundles services/agent/cli-entry.ts with everything it imports (the nats clients, libsodium,
// zod…) into one ESM file, DIR/agent.mjs, that plain `node` runs, and writes DIR/unibus-release.json
// naming the release unibus-agent (boot-managed: the boot step tries it). Then
// `unibus release publish DIR --version V --key KEY` publishes it like any release. A slot's
// node_modules could not be a release (symlinks out of the slot are refused, rightly); a bundle
// has none. esbuild is a dev dependency (tsx runs on it too). The native helpers (unibus-netrules)
// are compiled beside the bundle, for the architecture of the machine that builds the release.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { Version } from "../schemas/mod.ts";
import { SELF_ENTRY, SELF_RELEASE } from "../services/agent/update/mod.ts";
import { NATIVE, NODE_BUNDLE, compileNative } from "./build.ts";

const ROOT = resolve(import.meta.dirname, "..");

export interface AgentReleaseOptions {
  out: string;
  version: string;
  notes?: string;
  /** The oldest agent that can take it: one that knows the boot step (this one). */
  minAgentVersion?: string;
}

export async function buildAgentRelease(
  o: AgentReleaseOptions,
): Promise<{ dir: string; entry: string; bytes: number }> {
  const version = Version.parse(o.version);
  mkdirSync(o.out, { recursive: true });
  const entry = join(o.out, SELF_ENTRY);
  const r = await build({
    entryPoints: [join(ROOT, "services/agent/cli-entry.ts")],
    outfile: entry,
    ...NODE_BUNDLE,
    // The bundle has no package.json beside it: its version is the release's (services/agent/version.ts).
    define: { UNIBUS_AGENT_BUILD_VERSION: JSON.stringify(version) },
    metafile: true,
  });
  if (r.errors.length > 0) throw new Error(`esbuild: ${r.errors.map((e) => e.text).join("; ")}`);
  // The native helpers beside the bundle (built for this machine's architecture): the sandbox finds them there.
  for (const [name, src] of Object.entries(NATIVE)) compileNative(ROOT, src, join(o.out, name));
  writeFileSync(
    join(o.out, "unibus-release.json"),
    JSON.stringify(
      {
        name: SELF_RELEASE,
        min_agent_version: o.minAgentVersion ?? "0.1.0",
        notes: o.notes ?? `unibus agent ${version}`,
        install: null,
        health: null,
        services: [],
      },
      null,
      2,
    ) + "\n",
  );
  const bytes = Object.values(r.metafile.outputs).reduce((n, x) => n + x.bytes, 0);
  return { dir: o.out, entry, bytes };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values: f } = parseArgs({
    options: {
      out: { type: "string" },
      version: { type: "string" },
      notes: { type: "string" },
      "min-agent-version": { type: "string" },
    },
    strict: true,
  });
  if (!f.out || !f.version) {
    console.error(
      "usage: npx tsx scripts/build-agent-release.ts --out DIR --version 1.2.3 [--notes TEXT] [--min-agent-version V]",
    );
    process.exit(2);
  }
  const built = await buildAgentRelease({
    out: resolve(f.out),
    version: f.version,
    ...(f.notes ? { notes: f.notes } : {}),
    ...(f["min-agent-version"] ? { minAgentVersion: f["min-agent-version"] } : {}),
  });
  console.log(
    `wrote ${built.entry} (${built.bytes} bytes) and ${join(built.dir, "unibus-release.json")}\n# publish: bin/unibus release publish ${built.dir} --version ${f.version} --key release.key`,
  );
}
