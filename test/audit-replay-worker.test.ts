// `audit replay` verifies a long read's signatures on a worker thread (services/core/verify-worker.ts)
// and checks each event in order with the worker's verdict: on a real stream holding good events in
// batches, a forged event (a changed field under its old signature), a batch event whose proof was
// tampered with, an event of a good batch whose body was changed, an untrusted writer's event, a
// broken chain and bytes that are not JSON, it finds exactly what the sequential check finds, with
// the same projections; and a process that replays through the worker exits on its own.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { ensureEventStream, lastSequence } from "../services/bus/mod.ts";
import {
  type EventDraft,
  newUserSeed,
  type QuarantineFinding,
  type Signer,
  signEventBatch,
  signerFromSeed,
  storageKey,
} from "../services/core/mod.ts";
import { eventSubject } from "../services/core/blind.ts";
import { rebuildProjections } from "../services/cli/audit.ts";
import { clientFor, ROOT, startNats, type NatsHandle } from "./harness.ts";

const newSigner = (): Signer => signerFromSeed(newUserSeed());

function draft(
  w: Signer,
  id: string,
  kind: string,
  aggregate: string,
  type: string,
  data: object,
  prev: string | null,
) {
  return {
    id,
    type,
    kind,
    aggregate,
    ts: "2026-01-01T00:00:00.000Z",
    actor: { id: "admin", key: w.publicKey },
    causation: id,
    correlation: id,
    prev,
    data: data as Record<string, unknown>,
  } satisfies EventDraft;
}

/** A stored event's JSON with a change made to it (its signature and proof kept as they were). */
function altered(bytes: Uint8Array, change: (e: Record<string, any>) => void): Uint8Array {
  const e = JSON.parse(Buffer.from(bytes).toString("utf8"));
  change(e);
  return Buffer.from(JSON.stringify(e));
}

describe("audit replay with the signatures verified on a worker thread", { timeout: 120_000 }, () => {
  let nats: NatsHandle;
  let c: Awaited<ReturnType<typeof clientFor>>;
  let atSeq = 0;
  const expected: string[] = [];

  before(async () => {
    nats = await startNats();
    c = await clientFor(nats.url);
    await ensureEventStream(c.jsm, 1);
    const w = newSigner();
    const stranger = newSigner();
    const out: { subject: string; bytes: Uint8Array }[] = [];
    const put = (kind: string, aggregate: string, bytes: Uint8Array) =>
      out.push({ subject: eventSubject(kind, aggregate), bytes });
    const [genesis] = signEventBatch(
      [draft(w, "g", "system", "genesis", "SystemInitialized", { cluster: "test", service_key: w.publicKey }, null)],
      w,
    );
    put("system", "genesis", genesis!.bytes);
    const heads = new Map<string, string>();
    // Rooms created in batches of 64 (one signature each, every event with its Merkle proof), then
    // archived one by one (a signature each): chains of two events.
    for (let b = 0; b < 12; b++) {
      const drafts = Array.from({ length: 64 }, (_v, j) => {
        const room = `r${b * 64 + j}`;
        return draft(
          w,
          `c${room}`,
          "room",
          room,
          "RoomCreated",
          { room, subject: `room ${room}`, created_by: "admin" },
          null,
        );
      });
      const signed = signEventBatch(drafts, w);
      signed.forEach((s, j) => {
        let bytes = s.bytes;
        const room = `r${b * 64 + j}`;
        if (b === 3 && j === 5) {
          // Its proof tampered with: another node of the same tree in its path.
          bytes = altered(s.bytes, (e) => (e.batch.path[0] = signed[40]!.event.batch!.path[2]));
          expected.push("bad_signature");
        } else if (b === 3 && j === 6) {
          // Its body changed under a good batch's signature and proof.
          bytes = altered(s.bytes, (e) => (e.data.subject = "forged"));
          expected.push("bad_signature");
        } else heads.set(room, s.hash);
        put("room", room, bytes);
      });
    }
    for (let i = 0; i < 300; i++) {
      const room = `r${i}`;
      const prev = heads.get(room) ?? null;
      const [s] = signEventBatch(
        [draft(w, `a${room}`, "room", room, "RoomArchived", { room, archived_by: "admin" }, prev)],
        w,
      );
      let bytes = s!.bytes;
      if (i === 17) {
        // Forged: a field changed under the old signature.
        bytes = altered(s!.bytes, (e) => (e.data.archived_by = "mallory"));
        expected.push("bad_signature");
      } else if (i === 18) {
        // Signed well, but by a key nobody trusts.
        bytes = signEventBatch(
          [draft(stranger, `x${room}`, "room", room, "RoomArchived", { room, archived_by: "admin" }, prev)],
          stranger,
        )[0]!.bytes;
        expected.push("untrusted_signer");
      } else if (i === 19) {
        // Signed well by the trusted writer, but not after the room's last good event.
        bytes = signEventBatch(
          [draft(w, `b${room}`, "room", room, "RoomArchived", { room, archived_by: "admin" }, null)],
          w,
        )[0]!.bytes;
        expected.push("chain_broken");
      } else if (i === 20) {
        bytes = Buffer.from("{not json");
        expected.push("malformed");
      }
      put("room", room, bytes);
    }
    for (const o of out) await c.js.publish(o.subject, o.bytes);
    atSeq = await lastSequence(c.jsm);
    assert.equal(atSeq, out.length);
  });

  after(async () => {
    await c?.nc.close();
    await nats?.stop();
  });

  const bucketsOf = (m: Awaited<ReturnType<typeof rebuildProjections>>) =>
    [...m.buckets].map(([name, records]) => [name, [...records].map(([k, v]) => [storageKey(k), v])]);
  const digest = (v: unknown) => createHash("sha256").update(JSON.stringify(v)).digest("hex");

  test("the same projections, findings and digest as the sequential check", async () => {
    const run = async (verifyWorkerFrom: number) => {
      const quarantined: QuarantineFinding[] = [];
      const memory = await rebuildProjections(c.jsm, atSeq, false, {
        quarantined,
        verifyWorkerFrom,
        awaitVerifyWorker: true,
      });
      return { buckets: bucketsOf(memory), quarantined };
    };
    const sequential = await run(Number.POSITIVE_INFINITY);
    const parallel = await run(0);
    // The stream is what it was meant to be: exactly these events are quarantined.
    assert.deepEqual(
      [...sequential.quarantined.map((f) => f.problem)].sort(),
      [...expected].sort(),
      JSON.stringify(sequential.quarantined),
    );
    assert.deepEqual(parallel.quarantined, sequential.quarantined);
    assert.deepEqual(parallel.buckets, sequential.buckets);
    assert.equal(digest(parallel), digest(sequential));
    assert.ok(
      sequential.buckets.some(([, records]) => (records as unknown[]).length > 700),
      "rooms were rebuilt",
    );
  });

  test("a process replaying through the worker exits on its own", async () => {
    const script = `
      import { clientFor } from ${JSON.stringify(`${ROOT}/test/harness.ts`)};
      import { rebuildProjections } from ${JSON.stringify(`${ROOT}/services/cli/audit.ts`)};
      const c = await clientFor(${JSON.stringify(nats.url)});
      const q = [];
      const m = await rebuildProjections(c.jsm, ${atSeq}, false, { quarantined: q, verifyWorkerFrom: 0, awaitVerifyWorker: true });
      console.log(JSON.stringify({ quarantined: q.length, buckets: m.buckets.size }));
      await c.nc.close();
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        resolve(null);
      }, 30_000);
      child.on("exit", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    assert.equal(code, 0, `the process did not exit on its own: ${stdout}${stderr}`);
    assert.equal(JSON.parse(stdout.trim()).quarantined, expected.length);
  });
});
