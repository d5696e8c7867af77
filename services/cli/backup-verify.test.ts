// `unibus backup keygen` and `unibus backup verify` as real processes, offline: a key pair from
// keygen, a backup the test writes for it with writeBackup, then verify's report and refusals.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { backupOf, eventStream, iterate, newSigner, written } from "../core/backup/fixture.ts";

const ROOT = resolve(import.meta.dirname, "../..");

function unibus(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const proc = spawn(join(ROOT, "bin/unibus"), args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d) => (stdout += d));
    proc.stderr.on("data", (d) => (stderr += d));
    proc.once("exit", (code) => res({ code: code ?? -1, stdout, stderr }));
  });
}

test("backup keygen writes a 0600 seed; backup verify checks a backup sealed to it, offline", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "unibus-backup-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, "backup.key");

  const keygen = await unibus(["backup", "keygen", "--out", keyFile]);
  assert.equal(keygen.code, 0, keygen.stderr);
  const recipient = keygen.stdout.trim();
  assert.match(recipient, /^X[A-Z2-7]{55}$/);
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  assert.match(readFileSync(keyFile, "utf8"), /^SX[A-Z2-7]+\n$/);
  const again = await unibus(["backup", "keygen", "--out", keyFile]);
  assert.equal(again.code, 2, "never over an existing key");

  const service = newSigner();
  const events = eventStream(service, 5);
  const { header, records } = backupOf(events, service, recipient);
  const file = join(dir, "home.ubk");
  writeFileSync(file, await written({ header, signer: service, records: iterate(records) }));

  const verified = await unibus(["backup", "verify", file, "--key", keyFile, "--cluster", "home", "--json"]);
  assert.equal(verified.code, 0, verified.stderr);
  const report = JSON.parse(verified.stdout);
  assert.equal(report.chain, "ok");
  assert.equal(report.events, 6);
  assert.equal(report.events_head, events.at(-1)!.hash);
  assert.deepEqual(
    report.streams.map((s: { name: string }) => s.name),
    ["UNIBUS_EVENTS", "KV_UNIBUS_shares", "OBJ_UNIBUS_releases"],
  );

  const human = await unibus(["backup", "verify", file, "--key", keyFile]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /6 events: every signature and hash chain is intact/);

  const other = await unibus(["backup", "verify", file, "--key", keyFile, "--cluster", "office"]);
  assert.equal(other.code, 1);
  assert.match(other.stderr.trim(), /^unibus: .*is of cluster home, not office \[E_BACKUP_OTHER_CLUSTER\]$/);

  const bytes = readFileSync(file);
  writeFileSync(file, bytes.subarray(0, bytes.length - 100));
  const cut = await unibus(["backup", "verify", file, "--key", keyFile]);
  assert.equal(cut.code, 1);
  assert.match(cut.stderr, /\[E_BACKUP_TRUNCATED\]/);

  chmodSync(keyFile, 0o644);
  const open = await unibus(["backup", "verify", file, "--key", keyFile]);
  assert.match(open.stderr, /\[E_SECRET_PERMS\]/);
});
