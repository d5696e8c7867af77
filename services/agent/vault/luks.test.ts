// LUKS with the real cryptsetup on a loop device: formatted and opened with the data key on
// stdin, mounted, closed, and refused with another key. Needs root, cryptsetup, a loop device and
// the kernel's device-mapper; where any is missing the test says which and is skipped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CRYPTSETUP, closeLuks, luksRefusal, openLuks } from "./luks.ts";

function unavailable(): string | null {
  const refused = luksRefusal(true);
  if (refused) return refused;
  if (!existsSync("/usr/sbin/mkfs.ext4")) return "mkfs.ext4 is not installed";
  if (!readFileSync("/proc/misc", "utf8").includes("device-mapper"))
    return "the kernel has no device-mapper here (dm_mod is not loaded and cannot be in this sandbox): LUKS is built but not exercised";
  if (spawnSync("losetup", ["-f"]).status !== 0) return "no free loop device";
  return null;
}
const why = unavailable();

test("refused unless allowed, as root, with cryptsetup", async () => {
  const r = await openLuks({ device: "/dev/null", name: "unibus-never", mount: "/nonexistent" }, new Uint8Array(32), {
    allowed: false,
  });
  assert.deepEqual([r.ok, !r.ok && r.error.code], [false, "E_LUKS_NOT_ALLOWED"]);
  assert.match(luksRefusal(true, "/nonexistent/cryptsetup") ?? luksRefusal(true) ?? "", /cryptsetup|root/);
});

test("a loop device formatted, opened and mounted with the data key; another key does not open it", {
  skip: why ? `skipped: ${why}` : false,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "unibus-luks-"));
  const img = join(dir, "disk.img");
  execFileSync("truncate", ["-s", "64M", img]);
  const loop = execFileSync("losetup", ["-f", "--show", img], { encoding: "utf8" }).trim();
  const target = { device: loop, name: `unibus-test-${process.pid}`, mount: join(dir, "mnt"), format: true };
  execFileSync("mkdir", ["-p", target.mount]);
  const key = new Uint8Array(32).map((_, i) => i + 1);
  try {
    const r = await openLuks(target, key, { allowed: true });
    assert.ok(r.ok, JSON.stringify(r));
    writeFileSync(join(target.mount, "data"), "kept");
    await closeLuks(target);
    assert.equal(existsSync(`/dev/mapper/${target.name}`), false);
    const wrong = await openLuks({ ...target, format: false }, new Uint8Array(32).fill(9), { allowed: true });
    assert.equal(wrong.ok, false);
    const again = await openLuks({ ...target, format: false }, key, { allowed: true });
    assert.ok(again.ok, JSON.stringify(again));
    assert.equal(readFileSync(join(target.mount, "data"), "utf8"), "kept");
  } finally {
    await closeLuks(target, CRYPTSETUP).catch(() => {});
    spawnSync("losetup", ["-d", loop]);
    rmSync(dir, { recursive: true, force: true });
  }
});
