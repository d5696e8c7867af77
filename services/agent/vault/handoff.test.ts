// The agent's side of the key hand-off as root, next to membershipd under its own user (as the
// shipped units run them): the node's directory is membershipd's (made by a child process running
// as `nobody`, 65534, in a parent that user owns, as RuntimeDirectory makes /run/unibus), the
// services' copies stay in the agent's own services/, membershipd can take at-rest.key and read
// vault-state.json, and what that user plants in its directory is never followed by root.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { VaultInfo } from "../../../schemas/mod.ts";
import { fsTypeOf } from "../../bus/mod.ts";
import { asUser } from "../../../test/as-user.ts";
import { KeyHandoff } from "./handoff.ts";

const MD = 65534;
const SERVICE = 60_123;
const why =
  !existsSync("/dev/shm") || fsTypeOf("/dev/shm") !== "tmpfs"
    ? "no tmpfs at /dev/shm"
    : process.getuid?.() !== 0
      ? "needs root (the agent's UID) and setuid for membershipd's child"
      : null;

/** A root-owned 0755 stand-in for /run with unibus/ (membershipd's user's, 0700) and the node's directory in it, made by membershipd. */
function membershipdMadeIt(): { run: string; dir: string } {
  const run = mkdtempSync("/dev/shm/unibus-ho-");
  chmodSync(run, 0o755);
  const parent = join(run, "unibus");
  mkdirSync(parent, { mode: 0o700 });
  chownSync(parent, MD, MD);
  const dir = join(parent, "n1");
  asUser(
    MD,
    `prepareKeyDir(${JSON.stringify(dir)}); (await import("node:fs")).writeFileSync(${JSON.stringify(join(dir, "at-rest.key.want"))}, "", { mode: 0o600 });`,
  );
  return { run, dir };
}

const info: VaultInfo = {
  state: "unlocked",
  epoch: 1,
  k: 3,
  n: 4,
  reachable: 4,
  attempts: 1,
  next_retry_ms: null,
  mismatches: [],
  problem: null,
};

describe("KeyHandoff as root, membershipd as another user", { skip: why ?? false }, () => {
  test("the agent hands over in membershipd's directory: at-rest.key and vault-state.json are that user's (0600), the services' copies in root's own services/", () => {
    const { run, dir } = membershipdMadeIt();
    try {
      const h = new KeyHandoff(dir, true);
      h.prepare();
      h.writeState({ ...info });
      const key = new Uint8Array(randomBytes(32));
      h.giveServices(key, [{ name: "db", uid: SERVICE, gid: SERVICE }]);
      const services = statSync(join(dir, "services"));
      assert.deepEqual([services.uid, services.mode & 0o777], [0, 0o700], "root's own, which membershipd never reads");
      const copy = statSync(h.servicePath("db"));
      assert.deepEqual([copy.uid, copy.mode & 0o777], [SERVICE, 0o600]);
      assert.equal(h.serviceKeyFile("db"), h.servicePath("db"));
      assert.ok(h.atRestWanted());
      h.giveAtRest(key);
      const atRest = statSync(h.atRestPath);
      assert.deepEqual([atRest.uid, atRest.gid, atRest.mode & 0o777], [MD, MD, 0o600]);
      const seen = asUser(
        MD,
        `const fs = await import("node:fs");
         prepareKeyDir(${JSON.stringify(dir)});
         const state = JSON.parse(fs.readFileSync(${JSON.stringify(join(dir, "vault-state.json"))}, "utf8")).state;
         let services = "readable";
         try { fs.readdirSync(${JSON.stringify(join(dir, "services"))}); } catch (e) { services = e.code; }
         process.stdout.write(JSON.stringify({ key: takeKeyFile(${JSON.stringify(h.atRestPath)}), state, services }));`,
      );
      assert.deepEqual(JSON.parse(seen), {
        key: Buffer.from(key).toString("hex"),
        state: "unlocked",
        services: "EACCES",
      });
      h.removeAll();
      assert.equal(existsSync(dir), false, "every file wiped and the directory gone");
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  test("what membershipd's user plants in its directory is not followed: services/ or a file swapped for a symlink", () => {
    const { run, dir } = membershipdMadeIt();
    try {
      const victims = join(run, "victims");
      mkdirSync(victims, { mode: 0o700 });
      writeFileSync(join(victims, "db.key"), "precious\n", { mode: 0o600 });
      writeFileSync(join(victims, "config"), "precious\n", { mode: 0o600 });
      const h = new KeyHandoff(dir, true);
      h.prepare();
      const key = new Uint8Array(randomBytes(32));
      h.giveServices(key, [{ name: "db", uid: SERVICE, gid: SERVICE }]);
      // As that user: services/ renamed away and a symlink to root's directory in its place, and a
      // symlink where the agent writes vault-state.json.
      asUser(
        MD,
        `const fs = await import("node:fs");
         fs.renameSync(${JSON.stringify(join(dir, "services"))}, ${JSON.stringify(join(dir, "old"))});
         fs.symlinkSync(${JSON.stringify(victims)}, ${JSON.stringify(join(dir, "services"))});
         fs.symlinkSync(${JSON.stringify(join(victims, "config"))}, ${JSON.stringify(join(dir, "vault-state.json"))});`,
      );
      assert.throws(
        () => h.giveServices(key, [{ name: "db", uid: SERVICE, gid: SERVICE }]),
        (e: unknown) => (e as { code?: string }).code === "E_KEY_DIR_UNSAFE",
      );
      h.writeState({ ...info });
      h.removeService("db");
      h.removeAll();
      assert.equal(readFileSync(join(victims, "db.key"), "utf8"), "precious\n");
      assert.equal(readFileSync(join(victims, "config"), "utf8"), "precious\n");
      assert.equal(statSync(join(victims, "db.key")).uid, 0, "nothing written or chowned there");
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  test("the agent first: it makes the node's directory membershipd's, and membershipd accepts it", () => {
    const run = mkdtempSync("/dev/shm/unibus-ho-");
    try {
      chmodSync(run, 0o755);
      const parent = join(run, "unibus");
      mkdirSync(parent, { mode: 0o700 });
      chownSync(parent, MD, MD);
      const dir = join(parent, "n1");
      new KeyHandoff(dir, true).prepare();
      assert.equal(statSync(dir).uid, MD);
      asUser(MD, `prepareKeyDir(${JSON.stringify(dir)});`);
      // A swap of the whole directory for a symlink is refused too.
      renameSync(dir, join(parent, "away"));
      symlinkSync(join(parent, "away"), dir);
      assert.throws(
        () => new KeyHandoff(dir, true).prepare(),
        (e: unknown) => (e as { code?: string }).code === "E_KEY_DIR_UNSAFE",
      );
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });
});
