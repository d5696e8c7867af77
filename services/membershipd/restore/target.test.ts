// The target checks, the final move, the secrets' modes and the progress line, without a server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../../test/harness.ts";
import { restoreProgress } from "./progress.ts";
import { REQUIRED_SECRETS, writeSecrets } from "./secrets.ts";
import { checkTarget, inspectTarget, makeStagingDir, moveIntoPlace, removeStaleStagingDirs } from "./target.ts";

test("an absent or empty target may be written; one with a store or keys only with --force", () => {
  const root = tempDir("unibus-restore-unit-");
  assert.deepEqual(inspectTarget(join(root, "nope")), { exists: false, state: [] });
  const dir = join(root, "data");
  mkdirSync(join(dir, "nats", "jetstream"), { recursive: true });
  writeFileSync(join(dir, "route.secret"), "x");
  assert.deepEqual(checkTarget(dir, false), []);
  writeFileSync(join(dir, "nats", "jetstream", "x"), "");
  mkdirSync(join(dir, "auth"));
  assert.throws(() => checkTarget(dir, false), { code: "E_BACKUP_TARGET_NOT_EMPTY" });
  assert.deepEqual(checkTarget(dir, true), ["a JetStream store (nats/jetstream)", "auth"]);
});

test("the staged dir moves into place: renamed whole, or entry by entry with clashes moved aside", () => {
  const root = tempDir("unibus-restore-unit-");
  const fresh = join(root, "fresh");
  const s1 = makeStagingDir(fresh);
  assert.equal(join(s1, ".."), root, "beside an absent target");
  writeFileSync(join(s1, "service.nk"), "new");
  assert.equal(moveIntoPlace(s1, fresh), null);
  assert.deepEqual(readdirSync(fresh), ["service.nk"]);

  const used = join(root, "used");
  mkdirSync(join(used, "auth"), { recursive: true });
  writeFileSync(join(used, "auth", "operator.nk"), "old");
  writeFileSync(join(used, "route.secret"), "kept");
  const s2 = makeStagingDir(used);
  assert.equal(join(s2, ".."), used, "inside an existing target (same file system, even a mount point)");
  mkdirSync(join(s2, "auth"));
  writeFileSync(join(s2, "auth", "operator.nk"), "new");
  const aside = moveIntoPlace(s2, used, new Date("2026-01-02T03:04:05.000Z"))!;
  assert.equal(aside, join(used, ".replaced-2026-01-02T03-04-05-000Z"));
  assert.equal(readFileSync(join(used, "auth", "operator.nk"), "utf8"), "new");
  assert.equal(readFileSync(join(aside, "auth", "operator.nk"), "utf8"), "old");
  assert.equal(readFileSync(join(used, "route.secret"), "utf8"), "kept");
  assert.ok(!existsSync(s2));
});

test("secrets are written with their documented modes; a path out of the dir or a missing key is refused", () => {
  const files = Object.fromEntries(
    [...REQUIRED_SECRETS, "release-keys.pub"].map((f) => [f, Buffer.from(f).toString("base64")]),
  );
  const dir = tempDir("unibus-restore-unit-");
  writeSecrets(dir, files);
  const mode = (p: string) => statSync(join(dir, p)).mode & 0o777;
  assert.equal(mode("auth/operator.nk"), 0o600);
  assert.equal(mode("tls/server.key"), 0o600);
  assert.equal(mode("tls/ca.pem"), 0o644);
  assert.equal(mode("release-keys.pub"), 0o644);
  assert.equal(readFileSync(join(dir, "tls/ca.pem"), "utf8"), "tls/ca.pem");
  for (const bad of ["../x", "/etc/x", "a/../../x", ".hidden"])
    assert.throws(() => writeSecrets(tempDir(), { ...files, [bad]: "" }), { code: "E_BACKUP_INCONSISTENT" }, bad);
  const { "auth/operator.nk": _, ...lacking } = files;
  assert.throws(() => writeSecrets(tempDir(), lacking), /lacks auth\/operator\.nk/);
});

test("progress: in place on a terminal, a line every few seconds otherwise, nothing for a short restore", () => {
  let t = 0;
  const lines: string[] = [];
  const p = restoreProgress(1000, { tty: false, write: (s) => lines.push(s), now: () => t });
  p.update(10);
  t = 3500;
  p.update(500);
  t = 3600;
  p.update(600);
  p.end(1000);
  assert.deepEqual(lines, [
    "membershipd restore: 500/1000 messages (50 %), 143/s\n",
    "membershipd restore: 1000/1000 messages (100 %), 278/s\n",
  ]);
  const quiet: string[] = [];
  const q = restoreProgress(5, { tty: true, write: (s) => quiet.push(s), now: () => 0 });
  q.update(5);
  q.end(5);
  assert.deepEqual(quiet, []);
});

test("a killed restore's staging dirs are removed by the next one; a live one's are left alone", () => {
  const root = tempDir("unibus-restore-unit-");
  const dir = join(root, "data");
  const dead = spawnSync("true").pid!;
  mkdirSync(join(dir, `.restore-${dead}`, "nats"), { recursive: true });
  mkdirSync(join(root, `.data.restore-${dead}`));
  mkdirSync(join(dir, `.restore-${process.ppid}`));
  assert.deepEqual(
    removeStaleStagingDirs(dir).sort(),
    [join(dir, `.restore-${dead}`), join(root, `.data.restore-${dead}`)].sort(),
  );
  assert.deepEqual(readdirSync(dir), [`.restore-${process.ppid}`]);
});
