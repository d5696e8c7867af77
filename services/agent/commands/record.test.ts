// The executed-command record: retries answered from it, clashes refused, interrupted commands
// answered E_INTERRUPTED, torn lines and expired entries forgotten, the file 0600 and compact.
import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, chmodSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Reply } from "../../../schemas/mod.ts";
import { tempDir } from "../../../test/harness.ts";
import { CommandRecord } from "./record.ts";
import { RECORD_RETENTION_MS } from "./record-lines.ts";
import { newUser, signed } from "./testing.ts";

const admin = newUser();
const ok = (n: number): Reply => ({ ok: true, result: { n } });
const T0 = Date.parse("2025-06-01T12:00:00.000Z");

function fixture() {
  const dir = tempDir("unibus-record-");
  const clock = { now: T0 };
  const open = () => new CommandRecord(join(dir, "commands.jsonl"), { now: () => clock.now, sync: false });
  const cmd = (o: { id?: string; nonce?: string } = {}) =>
    signed(admin, "restart", { node: "n1", service: "web" }, { ...o, now: new Date(clock.now) });
  return {
    dir,
    path: join(dir, "commands.jsonl"),
    clock,
    open,
    cmd,
    done: () => rmSync(dir, { recursive: true, force: true }),
  };
}

test("a command is claimed once; a retry waits for and then gets its reply; the file is 0600", async () => {
  const f = fixture();
  try {
    const r = f.open();
    const c = f.cmd();
    assert.deepEqual(r.find(c), { kind: "none" });
    assert.deepEqual(r.begin(c), { kind: "none" });
    const retry = r.begin(c);
    assert.equal(retry.kind, "same");
    r.complete(c.id, ok(1));
    assert.deepEqual(retry.kind === "same" ? await retry.reply : null, ok(1));
    assert.deepEqual(r.find(c), { kind: "same", reply: ok(1) });
    assert.equal(statSync(f.path).mode & 0o777, 0o600);
    r.close();
  } finally {
    f.done();
  }
});

test("another envelope under a known id or nonce is a clash, and so is any change to a known one", () => {
  const f = fixture();
  try {
    const r = f.open();
    const c = f.cmd();
    r.begin(c);
    r.complete(c.id, ok(1));
    assert.equal(r.find(f.cmd({ id: c.id })).kind, "clash");
    assert.equal(r.find(f.cmd({ nonce: c.nonce })).kind, "clash");
    assert.equal(r.find({ ...c, sig: c.sig.slice(0, -2) + (c.sig.endsWith("AA") ? "AB" : "AA") }).kind, "clash");
    assert.equal(r.find(f.cmd()).kind, "none");
    r.close();
  } finally {
    f.done();
  }
});

test("across a restart: answered commands are answered again, unfinished ones are interrupted", () => {
  const f = fixture();
  try {
    const r1 = f.open();
    const done = f.cmd();
    const cut = f.cmd();
    r1.begin(done);
    r1.complete(done.id, ok(7));
    r1.begin(cut);
    r1.close();
    const r2 = f.open();
    assert.deepEqual(r2.find(done), { kind: "same", reply: ok(7) });
    assert.deepEqual(
      r2.interrupted().map((e) => e.id),
      [cut.id],
    );
    const again = r2.find(cut);
    assert.ok(
      again.kind === "same" &&
        !(again.reply instanceof Promise) &&
        !again.reply.ok &&
        again.reply.error.code === "E_INTERRUPTED",
    );
    r2.complete(cut.id, { ok: false, error: { code: "E_INTERRUPTED", message: "x" } });
    assert.deepEqual(r2.interrupted(), []);
    r2.close();
    assert.deepEqual(f.open().interrupted(), [], "the settled interruption is on disk");
  } finally {
    f.done();
  }
});

test("a torn last line (a crash mid-append) is skipped, and appending after it still works", () => {
  const f = fixture();
  try {
    const r1 = f.open();
    const c = f.cmd();
    r1.begin(c);
    r1.complete(c.id, ok(1));
    r1.close();
    const whole = readFileSync(f.path, "utf8");
    appendFileSync(f.path, whole.split("\n")[0]!.slice(0, 40));
    const r2 = f.open();
    assert.deepEqual(r2.find(c), { kind: "same", reply: ok(1) });
    const d = f.cmd();
    r2.begin(d);
    r2.complete(d.id, ok(2));
    r2.close();
    const r3 = f.open();
    assert.deepEqual(r3.find(d), { kind: "same", reply: ok(2) });
    assert.deepEqual(r3.find(c), { kind: "same", reply: ok(1) });
    r3.close();
    assert.ok(
      readFileSync(f.path, "utf8")
        .split("\n")
        .filter(Boolean)
        .every((l) => JSON.parse(l)),
      "every line is whole",
    );
  } finally {
    f.done();
  }
});

test("garbage lines and a reply to an unknown id are ignored", () => {
  const f = fixture();
  try {
    writeFileSync(
      f.path,
      `not json\n{"t":"done","id":"ABCDEFGHIJ","at":1,"reply":{"ok":true,"result":1}}\n{"t":"recv"}\n`,
      { mode: 0o600 },
    );
    const r = f.open();
    assert.equal(r.size, 0);
    r.close();
  } finally {
    f.done();
  }
});

test("entries older than twice the clock window are forgotten, on open and while running", () => {
  const f = fixture();
  try {
    const r1 = f.open();
    const old = f.cmd();
    r1.begin(old);
    r1.complete(old.id, ok(1));
    f.clock.now += RECORD_RETENTION_MS - 1000;
    assert.equal(r1.find(old).kind, "same", "still within the window");
    f.clock.now += 2000;
    const fresh = f.cmd();
    r1.begin(fresh);
    assert.equal(r1.find(old).kind, "none", "pruned in memory");
    r1.complete(fresh.id, ok(2));
    r1.close();
    const r2 = f.open();
    assert.equal(r2.size, 1);
    assert.ok(!readFileSync(f.path, "utf8").includes(old.id), "compacted away on open");
    r2.close();
  } finally {
    f.done();
  }
});

test("the file stays small: it is rewritten once the appended lines outnumber the live entries", () => {
  const f = fixture();
  try {
    const r = f.open();
    for (let i = 0; i < 1500; i++) {
      const c = f.cmd();
      r.begin(c);
      r.complete(c.id, ok(i));
      f.clock.now += 1000;
    }
    r.close();
    const lines = readFileSync(f.path, "utf8").split("\n").filter(Boolean).length;
    assert.ok(lines <= 1000 + 2 * 125, `${lines} lines for ~121 live commands`);
    assert.ok(f.open().size <= 125);
  } finally {
    f.done();
  }
});

test("a record file others can read is refused", () => {
  const f = fixture();
  try {
    f.open().close();
    chmodSync(f.path, 0o644);
    assert.throws(() => f.open(), /readable by others/);
  } finally {
    f.done();
  }
});
