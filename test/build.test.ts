// The build (scripts/build.ts) and the launchers (bin/*, bin/lib/launch.sh) on a copy of the tree in
// a temp dir, so the checkout's own dist/ is never touched: the bundles run with plain node, a
// launcher runs a fresh bundle as is, rebuilds a stale one before running it (the new code is what
// runs), and where it cannot rebuild refuses in one sentence without running the stale one.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  appendFileSync,
  cpSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { BUNDLES, buildBundles, INPUTS_FILE } from "../scripts/build.ts";
import { ROOT, tempDir } from "./harness.ts";

const VERSION = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;
const COPIED = ["bin", "services", "schemas", "scripts/build.ts", "package.json", "package-lock.json", "tsconfig.json"];

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.once("exit", (code) => res({ code, stdout, stderr }));
  });
}

describe("build and launchers", { timeout: 180_000 }, () => {
  let root: string;
  const stamp = () => join(root, "dist", INPUTS_FILE);
  const mtime = (f: string) => statSync(f).mtimeMs;
  /** bundles_stale of bin/lib/launch.sh, as bash runs it on every start. */
  const stale = () =>
    spawnSync("bash", ["-c", 'source "$1/bin/lib/launch.sh"; bundles_stale "$1"', "_", root]).status === 0;

  before(async () => {
    root = tempDir("unibus-build-");
    // Times kept: the copy is as old as the sources, and the build below is newer than all of it.
    for (const p of COPIED) cpSync(join(ROOT, p), join(root, p), { recursive: true, preserveTimestamps: true });
    symlinkSync(join(ROOT, "node_modules"), join(root, "node_modules"));
    await buildBundles(root);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test("every bundle is built with its source map, and the CLI's bundle runs with plain node", async () => {
    for (const name of Object.keys(BUNDLES)) {
      const js = readFileSync(join(root, "dist", `${name}.mjs`), "utf8");
      assert.match(js, new RegExp(`//# sourceMappingURL=${name.split("/").pop()}\\.mjs\\.map\\s*$`), name);
      assert.ok(JSON.parse(readFileSync(join(root, "dist", `${name}.mjs.map`), "utf8")).mappings, name);
    }
    const inputs = readFileSync(stamp(), "utf8").trim().split("\n");
    for (const f of ["services/cli/cli-entry.ts", "services/membershipd/main.ts", "package-lock.json"])
      assert.ok(inputs.includes(f), `${f} is an input`);
    assert.ok(!inputs.some((f) => f.includes("node_modules")), "node_modules counts through package-lock.json");
    const v = await run("node", [join(root, "dist/cli/unibus.mjs"), "--version"]);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), `unibus ${VERSION}`, "the version is read from package.json beside dist/");
    const h = await run("node", [join(root, "dist/cli/unibus.mjs"), "--help"]);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /usage: unibus/);
  });

  test("a launcher runs a fresh bundle as it is", async () => {
    assert.equal(stale(), false);
    const before = mtime(join(root, "dist/cli/unibus.mjs"));
    const r = await run(join(root, "bin/unibus"), ["--version"]);
    assert.deepEqual(r, { code: 0, stdout: `unibus ${VERSION}\n`, stderr: "" });
    assert.equal(mtime(join(root, "dist/cli/unibus.mjs")), before, "not rebuilt");
  });

  test("a source newer than the build, or an input gone, makes the bundles stale", () => {
    const input = join(root, "services/cli/argv.ts");
    const text = readFileSync(input);
    const { atime, mtime: t } = statSync(input);
    const restore = () => {
      writeFileSync(input, text);
      utimesSync(input, atime, t);
    };
    appendFileSync(input, "\n");
    assert.equal(stale(), true, "a newer source");
    restore();
    assert.equal(stale(), false, "its old time again");
    unlinkSync(input);
    assert.equal(stale(), true, "an input gone");
    restore();
    assert.equal(stale(), false);
  });

  test("a stale bundle is rebuilt before it runs, once for starts that find it stale together", async () => {
    appendFileSync(join(root, "services/cli/cli-entry.ts"), '\nconsole.error("rebuilt-from-the-newer-source");\n');
    // The copy's build script notes each of its runs (the script is an input too: one more reason to rebuild).
    appendFileSync(
      join(root, "scripts/build.ts"),
      '\n(await import("node:fs")).appendFileSync(new URL("../builds.log", import.meta.url), "built\\n");\n',
    );
    const runs = await Promise.all([1, 2, 3].map(() => run(join(root, "bin/unibus"), ["--version"])));
    for (const r of runs) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `unibus ${VERSION}\n`);
      // Quiet in a pipe (the build says nothing there): the new code's own line is all of stderr.
      assert.equal(r.stderr, "rebuilt-from-the-newer-source\n", "the new code ran, never the stale bundle");
    }
    assert.equal(readFileSync(join(root, "builds.log"), "utf8"), "built\n", "one build for the three starts");
    assert.equal(stale(), false);
  });

  test("where it cannot rebuild (no dev dependencies), a launcher refuses and does not run the stale bundle", async () => {
    unlinkSync(join(root, "node_modules"));
    appendFileSync(join(root, "services/cli/cli-entry.ts"), '\nconsole.error("newer still");\n');
    for (const bin of ["unibus", "membershipd", "unibus-agent", "unibus-agent-boot"]) {
      const r = await run(join(root, "bin", bin), ["--help"]);
      assert.equal(r.code, 1, `${bin}: ${r.stdout}`);
      assert.equal(r.stdout, "", `${bin} ran nothing`);
      assert.match(r.stderr, /^unibus: dist\/ in .* is missing or older than its sources and cannot be built/, bin);
      assert.equal(r.stderr.trim().split("\n").length, 1, `${bin}: one sentence`);
    }
  });
});
