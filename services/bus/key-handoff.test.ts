// The key hand-off's file rules on this host's real file systems: only tmpfs or ramfs, a 0600
// file, wiped and gone once taken.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  KeyHandoffError,
  fsTypeIn,
  fsTypeOf,
  prepareKeyDir,
  prepareSharedKeyDir,
  takeKeyFile,
  wipeFile,
  writeKeyFile,
} from "./key-handoff.ts";
import { asUser } from "../../test/as-user.ts";

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

// A root agent and membershipd as another user share /run/unibus/<node>/: membershipd's unit makes
// /run/unibus its user's (RuntimeDirectory) and membershipd makes the node's directory, its own.
// Replayed here in a root-owned 0755 directory on /dev/shm standing for /run, with `nobody`
// (65534) for membershipd's user: the node's directory is made by a real child process running as
// that UID (spawn's uid/gid) with membershipd's own check, prepareKeyDir.
const asRoot = process.getuid?.() === 0;
const MD = 65534;
const OTHER = 65533;

/** /dev/shm/unibus-kh-XXX (root's, 0755: a stand-in for /run) with unibus/ (membershipd's user's, 0700). */
function runDir(): { run: string; parent: string } {
  const run = mkdtempSync("/dev/shm/unibus-kh-");
  chmodSync(run, 0o755);
  const parent = join(run, "unibus");
  mkdirSync(parent, { mode: 0o700 });
  chownSync(parent, MD, MD);
  return { run, parent };
}

const unsafeDir =
  (why = /./) =>
  (e: unknown) =>
    e instanceof KeyHandoffError && e.code === "E_KEY_DIR_UNSAFE" && why.test(e.message);

describe("a root agent shares the node's directory with membershipd's user", {
  skip: !shm ? "no tmpfs at /dev/shm" : !asRoot ? "needs root (the agent's UID) and setuid for the child" : false,
}, () => {
  test("membershipd made it first (the old E_KEY_DIR_UNSAFE): the agent accepts it and hands at-rest.key to that user, 0600", () => {
    const { run, parent } = runDir();
    try {
      const dir = join(parent, "n1");
      asUser(MD, `prepareKeyDir(${JSON.stringify(dir)});`);
      assert.equal(statSync(dir).uid, MD);
      assert.throws(
        () => prepareKeyDir(dir),
        unsafeDir(/belongs to UID 65534, not to this process/),
        "the check of its own ownership alone refuses it (the bug)",
      );
      assert.deepEqual(prepareSharedKeyDir(dir), { uid: MD, gid: MD });
      const file = join(dir, "at-rest.key");
      const hex = "cd".repeat(32);
      writeKeyFile(file, new TextEncoder().encode(hex + "\n"), { uid: MD, gid: MD });
      const st = statSync(file);
      assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [MD, MD, 0o600]);
      assert.equal(
        asUser(
          MD,
          `prepareKeyDir(${JSON.stringify(dir)}); process.stdout.write(takeKeyFile(${JSON.stringify(file)}));`,
        ),
        hex,
        "membershipd, as its user, still accepts the directory and takes the key",
      );
      assert.equal(existsSync(file), false);
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  test("the agent made it first: it is handed to the parent's owner, so membershipd accepts it afterwards", () => {
    const { run, parent } = runDir();
    try {
      const dir = join(parent, "n1");
      assert.deepEqual(prepareSharedKeyDir(dir), { uid: MD, gid: MD });
      const st = statSync(dir);
      assert.deepEqual([st.uid, st.mode & 0o777], [MD, 0o700]);
      asUser(MD, `prepareKeyDir(${JSON.stringify(dir)});`);
      // One root made before this rule (root-owned): handed over as well.
      const old = join(parent, "n2");
      mkdirSync(old, { mode: 0o700 });
      assert.deepEqual(prepareSharedKeyDir(old), { uid: MD, gid: MD });
      assert.equal(statSync(old).uid, MD);
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  test("still refused: a third UID's directory, one open to others, a symlink, and a parent another user could have made", () => {
    const { run, parent } = runDir();
    try {
      // Emulated (made by root, then chowned): a directory of a user who is neither root nor membershipd's.
      const third = join(parent, "third");
      mkdirSync(third, { mode: 0o700 });
      chownSync(third, OTHER, OTHER);
      assert.throws(() => prepareSharedKeyDir(third), unsafeDir(/belongs to UID 65533, not to UID 0 or UID 65534/));

      const open = join(parent, "open");
      asUser(MD, `prepareKeyDir(${JSON.stringify(open)});`);
      for (const mode of [0o770, 0o707, 0o777, 0o750]) {
        chmodSync(open, mode);
        assert.throws(() => prepareSharedKeyDir(open), unsafeDir(/has mode \d+, not 700/), `mode ${mode.toString(8)}`);
      }

      const target = join(parent, "target");
      asUser(MD, `prepareKeyDir(${JSON.stringify(target)});`);
      const link = join(parent, "link");
      symlinkSync(target, link);
      lchownSync(link, MD, MD);
      assert.throws(
        () => prepareSharedKeyDir(link),
        unsafeDir(/a symlink is refused/),
        "a symlink, even to membershipd's own directory",
      );

      // The parent group-writable: others could have planted the node's directory.
      chmodSync(parent, 0o770);
      assert.throws(() => prepareSharedKeyDir(join(parent, "n1")), unsafeDir(/writable by its group or others/));
      assert.equal(existsSync(join(parent, "n1")), false, "nothing made");
      chmodSync(parent, 0o700);

      // A parent in a directory anybody may write (sticky or not): anybody could have made it.
      for (const mode of [0o1777, 0o775]) {
        chmodSync(run, mode);
        assert.throws(
          () => prepareSharedKeyDir(join(parent, "n1")),
          unsafeDir(/would let another user have made/),
          `above: ${mode.toString(8)}`,
        );
      }
      chmodSync(run, 0o755);
      // Or in a directory that is not root's.
      chownSync(run, OTHER, OTHER);
      assert.throws(() => prepareSharedKeyDir(join(parent, "n1")), unsafeDir(/UID 65533, mode 755\) would let/));
      chownSync(run, 0, 0);
      assert.deepEqual(prepareSharedKeyDir(join(parent, "n1")), { uid: MD, gid: MD }, "and back to what is fine");
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });

  test("wipeFile never follows what was planted: a symlink or a second hard link is unlinked, its target untouched", () => {
    const { run, parent } = runDir();
    try {
      const victim = join(run, "victim");
      writeFileSync(victim, "precious\n", { mode: 0o600 });
      const dir = join(parent, "n1");
      asUser(MD, `prepareKeyDir(${JSON.stringify(dir)});`);
      symlinkSync(victim, join(dir, "vault-state.json"));
      wipeFile(join(dir, "vault-state.json"));
      assert.equal(existsSync(join(dir, "vault-state.json")), false);
      linkSync(victim, join(dir, "at-rest.key"));
      wipeFile(join(dir, "at-rest.key"));
      assert.equal(existsSync(join(dir, "at-rest.key")), false);
      assert.equal(readFileSync(victim, "utf8"), "precious\n");
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  });
});
