// Every systemd unit of deploy/cluster/systemd/ as deploy-cluster.sh installs it (lib.sh's
// render_unit, with @APP@ at this checkout so every ExecStart exists): `systemd-analyze verify`
// prints nothing about it, and `systemd-analyze security --offline=true` scores the hardened ones'
// exposure below their level (measured: membershipd 1.1, the agent 2.4; 3.2 and 4.3 before).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir } from "./harness.ts";

/** The highest exposure each hardened unit may score; every other unit there is verified and its score shown. */
const MAX_EXPOSURE: Record<string, number> = { "unibus-membershipd.service": 1.5, "unibus-agent.service": 2.8 };
const UNITS = readdirSync(join(ROOT, "deploy/cluster/systemd")).filter((f) => f.endsWith(".service"));
const missing = spawnSync("systemd-analyze", ["--version"]).error
  ? "systemd-analyze is not installed (scripts/install-deps.sh installs systemd)"
  : undefined;

/** Renders the units into DIR with the deploy's own function and the paths a node gets. */
function render(dir: string): string[] {
  return UNITS.map((unit) => {
    const r = spawnSync(
      "bash",
      [
        "-c",
        'source "$1" && render_unit "$2" unibus /etc/unibus "$3" /var/lib/unibus',
        "_",
        join(ROOT, "deploy/cluster/lib.sh"),
        unit,
        ROOT,
      ],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /@(USER|ETC|APP|DATA)@/, `${unit}: every placeholder is filled in`);
    const file = join(dir, unit);
    writeFileSync(file, r.stdout);
    return file;
  });
}

/** Lines about files other than ours: the host's own units that After=/Wants= pull in. */
const aboutHostUnit = (line: string, dir: string) =>
  /^\/\S+\.(service|target|socket|mount):/.test(line) && !line.startsWith(dir);

test("systemd-analyze verify has nothing to say about the rendered units", { skip: missing }, () => {
  const dir = tempDir("unibus-units-");
  try {
    const files = render(dir);
    const r = spawnSync("systemd-analyze", ["verify", ...files], { encoding: "utf8", timeout: 30_000 });
    const said = `${r.stdout}${r.stderr}`.split("\n").filter((l) => l.trim() !== "");
    const ours = said.filter((l) => !aboutHostUnit(l, dir));
    assert.deepEqual(ours, [], `systemd-analyze verify warned:\n${said.join("\n")}`);
    assert.equal(r.status, 0, said.join("\n"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("systemd-analyze security scores the hardened units' exposure below their level", { skip: missing }, (t) => {
  const dir = tempDir("unibus-units-");
  try {
    for (const file of render(dir)) {
      const unit = file.slice(dir.length + 1);
      const r = spawnSync("systemd-analyze", ["security", "--offline=true", "--no-pager", file], {
        encoding: "utf8",
        timeout: 30_000,
      });
      const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.stdout);
      assert.ok(m, `no exposure level in:\n${r.stdout}${r.stderr}`);
      const score = Number(m[1]);
      const max = MAX_EXPOSURE[unit];
      t.diagnostic(`${unit}: exposure ${score}${max === undefined ? "" : ` (at most ${max})`}`);
      if (max === undefined) continue;
      assert.ok(score <= max, `${unit} scores ${score}, above ${max}:\n${r.stdout}`);
      assert.match(readFileSync(file, "utf8"), /^SystemCallErrorNumber=EPERM$/m);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
