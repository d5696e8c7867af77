// The pure parts of membershipd's backups: names, retention, the fetch's refusals, the config a
// restore may take, and when posture calls the backups overdue.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, symlinkSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StreamConfig } from "@nats-io/jetstream";
import { isDomainError } from "../../core/mod.ts";
import { loadConfig } from "../config.ts";
import { backupName, backupProblem, listBackups, pruneBackups, readBackupChunk, restorableConfig } from "./mod.ts";

const H = 3_600_000;

test("backup names sort by time and match what fetch accepts", () => {
  const a = backupName("unibus", new Date("2026-12-06T09:30:00.000Z"));
  const b = backupName("unibus", new Date("2026-12-06T09:30:00.001Z"));
  assert.equal(a, "unibus-20261206T093000.000Z.ubk");
  assert.ok(a < b);
});

test("retention keeps the newest; listing ignores other files, symlinks and half-written ones", () => {
  const dir = mkdtempSync(join(tmpdir(), "unibus-backups-"));
  const names = [1, 2, 3, 4].map((m) => backupName("c", new Date(Date.UTC(2026, 0, 1, 0, m))));
  for (const n of names) writeFileSync(join(dir, n), n);
  writeFileSync(join(dir, ".c-20260101T000500.000Z.ubk.tmp"), "");
  writeFileSync(join(dir, "notes.txt"), "");
  symlinkSync("/etc/passwd", join(dir, "c-20260101T000600.000Z.ubk"));
  assert.deepEqual(
    listBackups(dir).map((b) => b.name),
    names,
  );
  assert.deepEqual(pruneBackups(dir, 2), names.slice(0, 2));
  assert.deepEqual(
    readdirSync(dir)
      .filter((n) => n.endsWith(".ubk") && !n.startsWith("c-20260101T0006"))
      .sort(),
    names.slice(2),
  );
});

test("a fetch reads backup files in the directory only", async () => {
  const dir = mkdtempSync(join(tmpdir(), "unibus-backups-"));
  const name = backupName("c", new Date(0));
  writeFileSync(join(dir, name), "0123456789");
  symlinkSync("/etc/passwd", join(dir, "c-19700101T000001.000Z.ubk"));
  for (const bad of ["../at-rest.key", "at-rest.key", `sub/${name}`, "c-19700101T000001.000Z.ubk"])
    assert.ok(isDomainError(await readBackupChunk(dir, bad, 0, 10)), bad);
  const piece = await readBackupChunk(dir, name, 4, 4);
  assert.ok(!isDomainError(piece));
  assert.equal(piece.data.toString(), "4567");
  assert.equal(piece.eof, false);
  const rest = await readBackupChunk(dir, name, 8, 100);
  assert.ok(!isDomainError(rest) && rest.eof && rest.data.toString() === "89" && rest.size === 10);
});

test("a restore takes the stream's settings but not this cluster's placement, replicas or seal", () => {
  const config = {
    name: "UNIBUS_EVENTS",
    subjects: ["unibus.evt.>"],
    deny_delete: true,
    num_replicas: 3,
    placement: { cluster: "c1", tags: [] },
    sealed: false,
    metadata: { "_nats.req.level": "1", owner: "unibus" },
  } as unknown as StreamConfig;
  assert.deepEqual(restorableConfig(config), {
    name: "UNIBUS_EVENTS",
    subjects: ["unibus.evt.>"],
    deny_delete: true,
    metadata: { owner: "unibus" },
  });
});

test("posture: overdue past two intervals, or none one interval after start", () => {
  assert.equal(backupProblem(H, null, H / 2, null), null);
  assert.match(backupProblem(H, null, H + 1, null)!, /no backup has been written/);
  assert.equal(backupProblem(H, 1.9 * 3600, 10 * H, null), null);
  assert.match(backupProblem(H, 2.1 * 3600, 10 * H, "disk full")!, /over twice the 1 h interval.*disk full/);
});

test("membershipd's backup flags: an interval needs a recipient; fractions of an hour, at least a second", () => {
  const X = `X${"A".repeat(55)}`;
  const base = ["--data-dir", "/tmp/unibus-x"];
  assert.equal(loadConfig(base, {}).backup, null);
  assert.equal(loadConfig(base, {}).backupDir, "/tmp/unibus-x/backups");
  assert.deepEqual(loadConfig([...base, "--backup-every", "0.5", "--backup-recipient", X], {}).backup, {
    everyMs: H / 2,
    recipient: X,
    keep: 7,
  });
  assert.throws(() => loadConfig([...base, "--backup-every", "6"], {}), /needs --backup-recipient/);
  assert.throws(() => loadConfig([...base, "--backup-recipient", X], {}), /without --backup-every/);
  assert.throws(
    () => loadConfig([...base, "--backup-every", "0.0001", "--backup-recipient", X], {}),
    /at least a second/,
  );
  assert.throws(() => loadConfig([...base, "--backup-every", "1", "--backup-recipient", "nope"], {}));
});
