// The key hand-off's file rules on this host's real file systems: only tmpfs or ramfs, a 0600
// file, wiped and gone once taken.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KeyHandoffError, fsTypeIn, fsTypeOf, prepareKeyDir, takeKeyFile, writeKeyFile } from "./key-handoff.ts";

const MOUNTINFO = [
  "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw",
  "25 27 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw",
  "40 27 0:40 / /run rw,nosuid - tmpfs tmpfs rw",
  "41 40 0:41 / /run/with\\040space rw - ramfs ramfs rw",
  "42 27 254:0 /srv /run/unibus/n1 rw - ext4 /dev/vda rw",
].join("\n");

test("fsTypeIn: the longest mount point above a path wins; mountinfo escapes are read", () => {
  assert.equal(fsTypeIn(MOUNTINFO, "/var/lib/x"), "ext4");
  assert.equal(fsTypeIn(MOUNTINFO, "/dev/shm/k"), "tmpfs");
  assert.equal(fsTypeIn(MOUNTINFO, "/run/unibus/n2"), "tmpfs");
  assert.equal(fsTypeIn(MOUNTINFO, "/run/unibus/n1/x"), "ext4", "a disk bind-mounted into /run is not tmpfs");
  assert.equal(fsTypeIn(MOUNTINFO, "/run/with space/k"), "ramfs");
  assert.equal(fsTypeIn(MOUNTINFO, "/dev/shmx"), "ext4", "a prefix of a name is not a parent");
});

const shm = existsSync("/dev/shm") && fsTypeOf("/dev/shm") === "tmpfs";

test("prepareKeyDir refuses a directory on disk with E_KEY_DIR_NOT_TMPFS", {
  skip: fsTypeOf(tmpdir()) === "tmpfs" ? "the temp dir is tmpfs here" : false,
}, () => {
  const dir = join(mkdtempSync(join(tmpdir(), "unibus-kh-")), "keys");
  try {
    assert.throws(
      () => prepareKeyDir(dir),
      (e: unknown) => e instanceof KeyHandoffError && e.code === "E_KEY_DIR_NOT_TMPFS",
    );
    assert.equal(existsSync(dir), false, "nothing is made on the disk");
  } finally {
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }
});

test("on tmpfs: the directory must be 0700 and no symlink; the key file is 0600, wiped and gone once taken", {
  skip: shm ? false : "no tmpfs at /dev/shm",
}, () => {
  const root = mkdtempSync("/dev/shm/unibus-kh-");
  try {
    const dir = join(root, "n1");
    prepareKeyDir(dir);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    chmodSync(dir, 0o755);
    assert.throws(
      () => prepareKeyDir(dir),
      (e: unknown) => e instanceof KeyHandoffError && e.code === "E_KEY_DIR_UNSAFE",
    );
    chmodSync(dir, 0o700);
    mkdirSync(join(root, "target"), { mode: 0o700 });
    symlinkSync(join(root, "target"), join(root, "link"));
    assert.throws(
      () => prepareKeyDir(join(root, "link")),
      (e: unknown) => e instanceof KeyHandoffError && e.code === "E_KEY_DIR_UNSAFE",
    );

    const file = join(dir, "at-rest.key");
    const hex = "ab".repeat(32);
    writeKeyFile(file, new TextEncoder().encode(hex + "\n"));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(takeKeyFile(file), hex);
    assert.equal(existsSync(file), false, "taken: gone");
    assert.equal(takeKeyFile(file), null);

    writeFileSync(file, hex, { mode: 0o644 });
    assert.throws(
      () => takeKeyFile(file),
      (e: unknown) => e instanceof KeyHandoffError && e.code === "E_KEY_HANDOFF",
    );
    assert.equal(existsSync(file), false, "a file others could read is removed, not used");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
