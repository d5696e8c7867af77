import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  checkpointBody,
  checkpointSignatureValid,
  checkStatement,
  compareFull,
  compareHeads,
  formatCheckpoint,
  headsAtCheckpoint,
  headsDigest,
  parseCheckpoint,
  signCheckpoint,
  StreamDigest,
} from "./checkpoint.ts";
import { isDomainError } from "./errors.ts";
import { newUserSeed, sha256Hex, signerFromSeed } from "./signing/crypto.ts";

type Msg = [number, string, string];
const enc = (s: string) => Buffer.from(s);
const history: Msg[] = [
  [1, "unibus.evt.system.a", '{"n":1}'],
  [2, "unibus.evt.user.b", '{"n":2}'],
  [3, "unibus.evt.user.b", '{"n":3}'],
  [4, "unibus.evt.room.c", '{"n":4}'],
];

function digestOf(msgs: Msg[]): StreamDigest {
  const d = new StreamDigest();
  for (const [seq, subject, body] of msgs) d.add(seq, subject, enc(body));
  return d;
}

/** The messages' bodies put back at consecutive sequences from 1, as a rebuilt stream would hold them. */
const renumber = (msgs: Msg[]): Msg[] => msgs.map(([, s, b], i) => [i + 1, s, b]);

const signer = signerFromSeed(newUserSeed());
const NOW = new Date("2026-12-06T04:00:00.000Z");
const checkpointOf = (msgs: Msg[]) =>
  signCheckpoint(checkpointBody("UNIBUS_EVENTS", digestOf(msgs), [signer.publicKey], NOW), signer);

describe("the running hash", () => {
  test("the same messages give the same hash; any change, removal, reorder or re-encoding another", () => {
    const base = digestOf(history).runningHash;
    assert.equal(digestOf(history).runningHash, base);
    const variants: Msg[][] = [
      history.map((m) => (m[0] === 2 ? [2, m[1], '{"n":22}'] : m)),
      renumber(history.filter((m) => m[0] !== 2)).concat([[4, "unibus.evt.x.y", "{}"]]),
      renumber([history[0]!, history[2]!, history[1]!, history[3]!]),
      history.map((m) => (m[0] === 3 ? [3, m[1], '{ "n": 3 }'] : m)),
      history.map((m) => (m[0] === 4 ? [4, "unibus.evt.room.d", m[2]] : m)),
    ];
    for (const v of variants) assert.notEqual(digestOf(v).runningHash, base, JSON.stringify(v));
  });

  test("heads are each subject's last message hash, and their digest does not depend on order", () => {
    const d = digestOf(history);
    assert.deepEqual(
      [...d.heads],
      [
        ["unibus.evt.system.a", sha256Hex('{"n":1}')],
        ["unibus.evt.user.b", sha256Hex('{"n":3}')],
        ["unibus.evt.room.c", sha256Hex('{"n":4}')],
      ],
    );
    assert.equal(headsDigest(new Map([...d.heads].reverse())), d.headsDigest());
    assert.notEqual(headsDigest(new Map([...d.heads].slice(1))), d.headsDigest());
  });
});

describe("the signed statement", () => {
  test("round-trips through its one-line form and verifies; any edit breaks the signature", () => {
    const c = checkpointOf(history);
    const line = formatCheckpoint(c);
    assert.ok(!line.includes("\n") && line.length < 600, `${line.length} characters`);
    const back = parseCheckpoint(`\n${line}\n`, "cp.json");
    assert.ok(!isDomainError(back));
    assert.deepEqual(back, c);
    assert.ok(checkpointSignatureValid(c));
    assert.ok(!checkpointSignatureValid({ ...c, last_seq: 3 }));
    assert.ok(!checkpointSignatureValid({ ...c, signer: signerFromSeed(newUserSeed()).publicKey }));
  });

  test("a file that is no checkpoint is one readable E_CHECKPOINT sentence", () => {
    for (const text of ["not json", "{}", JSON.stringify({ ...checkpointOf(history), extra: 1 })]) {
      const r = parseCheckpoint(text, "cp.json");
      assert.ok(isDomainError(r), text);
      assert.equal(r.code, "E_CHECKPOINT");
      assert.match(r.message, /^cp\.json is not [^\n]+$/);
    }
  });

  test("checkStatement: a bad signature, an untrusted signer, another stream", () => {
    const c = checkpointOf(history);
    assert.deepEqual(checkStatement(c, "UNIBUS_EVENTS", new Set([signer.publicKey])), []);
    const problems = (x: typeof c, trusted: string[], stream = "UNIBUS_EVENTS") =>
      checkStatement(x, stream, new Set(trusted)).map((f) => f.problem);
    assert.deepEqual(problems({ ...c, running_hash: "0".repeat(64) }, [signer.publicKey]), ["checkpoint_signature"]);
    assert.deepEqual(problems(c, []), ["checkpoint_signer"]);
    assert.deepEqual(problems(c, [signer.publicKey], "OTHER"), ["checkpoint_stream"]);
  });
});

describe("comparing a stream with a checkpoint", () => {
  const c = checkpointOf(history.slice(0, 3));

  test("a stream that extends it passes; one cut, changed or reordered at or before it fails", () => {
    assert.equal(compareFull(c, digestOf(history.slice(0, 3))), null);
    const cut = compareFull(c, digestOf(history.slice(0, 2)));
    assert.equal(cut?.problem, "checkpoint_cut");
    assert.match(cut!.detail, /ends at seq 2, .*events 3\.\.3 were cut/);
    const removed = compareFull(c, digestOf(renumber([history[0]!, history[2]!, history[3]!])));
    assert.equal(removed?.problem, "checkpoint_diverged");
    assert.match(removed!.detail, /the aggregates' last events differ too/);
    const swapped = compareFull(
      checkpointOf(history),
      digestOf(renumber([history[0]!, history[1]!, history[3]!, history[2]!])),
    );
    assert.equal(swapped?.problem, "checkpoint_diverged");
    assert.match(swapped!.detail, /every aggregate's last event is the same, so events were reordered/);
  });

  test("heads rebuilt from later events' prev claims and untouched subjects' last messages", () => {
    const at3 = digestOf(history.slice(0, 3)).heads;
    const untouched = new Map([...at3].filter(([s]) => s !== "unibus.evt.user.b"));
    const honest = headsAtCheckpoint(untouched, new Map([["unibus.evt.user.b", sha256Hex('{"n":3}')]]));
    assert.equal(compareHeads(c, new Map([...honest, ["unibus.evt.room.c", "x"]]))?.problem, "checkpoint_heads");
    assert.equal(compareHeads(c, honest), null);
    // A later event that claims its aggregate is new, though it existed at the checkpoint: the digest differs.
    const forged = headsAtCheckpoint(untouched, new Map([["unibus.evt.user.b", null]]));
    assert.match(
      compareHeads(c, forged)!.detail,
      /^the chain heads of the 1 aggregates at seq 3 do not match the 2 of the checkpoint of UNIBUS_EVENTS at seq 3 /,
    );
  });
});
