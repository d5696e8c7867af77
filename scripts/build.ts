// `make build`: bundles the CLI, membershipd, the agent, the agent's boot step and the log forwarder with esbuild into
// dist/, each one ESM file with everything it imports (the nats clients, libsodium, zod…) that plain
// `node` runs, and a source map beside it. bin/* run these bundles (bin/lib/launch.sh), never the
// sources: tsx transpiled every module on every start (0.8 s of CPU for `unibus --help`, issue 23).
// tsx stays for development and the tests. esbuild because tsx already runs on it (no new kind of
// dependency) and scripts/build-agent-release.ts bundles the agent's own releases with it.
//
// Each bundle lies as deep under dist/ as its sources under services/ (dist/cli/ for services/cli/),
// so the paths the code resolves against import.meta.url (../../package.json, for the version) reach
// the same files. dist/inputs.txt lists what the bundles were built from: the repository's files
// esbuild read, package-lock.json for everything under node_modules, tsconfig.json and this script.
// The launcher rebuilds when one of them is newer than inputs.txt or gone.
//
// Native helpers (NATIVE) are compiled with the host's cc into dist/ beside the bundles' folders:
// dist/unibus-netrules, the Landlock step of an app's sandbox, which Node cannot do itself
// (services/agent/supervisor/sandbox.ts finds it there). scripts/install-deps.sh installs gcc.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, renameSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { type BuildOptions, build } from "esbuild";

const ROOT = resolve(import.meta.dirname, "..");

/** Bundle (under dist/, without .mjs) → its entry source. bin/* name the bundles. */
export const BUNDLES: Readonly<Record<string, string>> = {
  "cli/unibus": "services/cli/cli-entry.ts",
  "membershipd/membershipd": "services/membershipd/cli-entry.ts",
  "agent/unibus-agent": "services/agent/cli-entry.ts",
  "agent/boot": "services/agent/update/boot-cli.ts",
  "forwarder/unibus-forwarder": "services/forwarder/cli-entry.ts",
};

/** Helper (under dist/) → its C source, compiled with `cc -O2 -Wall -Werror`. */
export const NATIVE: Readonly<Record<string, string>> = {
  "unibus-netrules": "services/agent/supervisor/landlock/unibus-netrules.c",
};

/** The stamp bin/lib/launch.sh checks: one input path (relative to the root) per line. */
export const INPUTS_FILE = "inputs.txt";

/** Inputs esbuild does not report: node_modules (by its lock file), the tsconfig it reads, this script. */
const EXTRA_INPUTS = ["package-lock.json", "tsconfig.json", "scripts/build.ts"];

/**
 * The stamp's time is the build's start minus this: a file's mtime comes from the kernel's coarse
 * clock (a few ms behind), and a source saved while esbuild runs must count as newer than the build.
 */
const STAMP_MARGIN_MS = 100;

/** What every Node bundle of unibus shares (this build and the agent's releases). */
export const NODE_BUNDLE: BuildOptions = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // Bundled CommonJS (libsodium-wrappers, the nats transport) calls require for Node's built-ins.
  banner: {
    js: `import { createRequire as __unibusRequire } from "node:module";\nconst require = __unibusRequire(import.meta.url);`,
  },
  legalComments: "inline",
  logLevel: "silent",
};

export interface Built {
  /** The dist directory. */
  out: string;
  /** The files written, relative to `out`. */
  files: string[];
  /** The stamp's input list, relative to `root`. */
  inputs: string[];
  ms: number;
}

/** Builds every bundle of BUNDLES from `root` into `root`/dist. Each file appears whole (written, then renamed). */
export async function buildBundles(root: string = ROOT): Promise<Built> {
  const started = Date.now();
  const out = join(root, "dist");
  const r = await build({
    ...NODE_BUNDLE,
    absWorkingDir: root,
    entryPoints: Object.fromEntries(Object.entries(BUNDLES).map(([name, src]) => [name, join(root, src)])),
    outdir: out,
    outExtension: { ".js": ".mjs" },
    // Linked maps without the sources' text: the sources ship beside dist/ (and a map 3× smaller is parsed faster).
    sourcemap: "linked",
    sourcesContent: false,
    metafile: true,
    write: false,
    // esbuild's warnings name what would fail at run time (a require it cannot resolve); errors throw.
    logLevel: "warning",
  });
  const files: string[] = [];
  for (const f of r.outputFiles) {
    writeWhole(f.path, f.contents);
    files.push(relative(out, f.path));
  }
  for (const [name, src] of Object.entries(NATIVE)) {
    compileNative(root, src, join(out, name));
    files.push(name);
  }
  const inputs = [
    ...new Set([...Object.keys(r.metafile.inputs).filter(ownFile), ...EXTRA_INPUTS, ...Object.values(NATIVE)]),
  ].sort();
  const stamp = join(out, INPUTS_FILE);
  writeWhole(stamp, `${inputs.join("\n")}\n`);
  const at = (started - STAMP_MARGIN_MS) / 1000;
  utimesSync(stamp, at, at);
  return { out, files: files.sort(), inputs, ms: Date.now() - started };
}

/** A file of the repository itself (node_modules is covered by package-lock.json). */
function ownFile(path: string): boolean {
  return !path.startsWith("..") && !path.split(/[\\/]/).includes("node_modules") && !path.includes(":");
}

/**
 * Compiles `src` (relative to `root`) to `path`: under a temporary name, then renamed like a bundle.
 * Throws with cc's own message.
 */
export function compileNative(root: string, src: string, path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const cc = spawnSync("cc", ["-O2", "-Wall", "-Werror", "-o", tmp, join(root, src)], { encoding: "utf8" });
  if (cc.error || cc.status !== 0)
    throw new Error(
      `cc could not compile ${src} (scripts/install-deps.sh installs gcc): ${cc.error?.message ?? cc.stderr.trim()}`,
    );
  chmodSync(tmp, 0o755);
  renameSync(tmp, path);
}

/** Writes under a temporary name and renames: a process starting now runs the old file or the new, never half. */
function writeWhole(path: string, data: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values: f } = parseArgs({ options: { quiet: { type: "boolean" } }, strict: true });
  try {
    const b = await buildBundles();
    if (!f.quiet)
      console.log(
        `built ${b.files.filter((x) => x.endsWith(".mjs")).length} bundles in ${b.out}${sep} from ${b.inputs.length} files in ${b.ms} ms`,
      );
  } catch (err) {
    // esbuild's own message names the file, line and column of each error.
    console.error(`unibus build: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
