// The pure parts of the rooms client: when a sender rotates, who joins, and what a line shows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RoomKeyPolicy, type RoomKeysView } from "../../../schemas/mod.ts";
import { describeMessage, sanitize } from "./read.ts";
import { joinersOf, keyHoldersOf, rotationReason } from "./rotation.ts";

const U = (c: string) => `U${c.repeat(55)}`;
const X = (c: string) => `X${c.repeat(55)}`;
const STARTED = "2026-12-01T00:00:00.000Z";
const NOW = new Date("2026-12-02T00:00:00.000Z");

function view(o: {
  sealedTo?: string[] | null;
  members?: { user: string; kex?: boolean; revoked?: boolean }[];
  policy?: Partial<RoomKeyPolicy>;
  messages?: number;
}): RoomKeysView {
  const members = (o.members ?? [{ user: "alice" }, { user: "bob" }]).map((m, i) => ({
    user: m.user,
    role: "member" as const,
    sign_key: U("ABCDEFG"[i]!),
    kex_key: m.kex === false ? null : X("ABCDEFG"[i]!),
    revoked: m.revoked ?? false,
  }));
  const current =
    o.sealedTo === null
      ? null
      : {
          epoch: 1,
          reason: "first" as const,
          made_by: "alice",
          started_at: STARTED,
          members: 2,
          sealed_to: o.sealedTo ?? ["alice", "bob"],
        };
  return {
    room: "r",
    archived: false,
    policy: RoomKeyPolicy.parse(o.policy ?? {}),
    current,
    messages_in_epoch: o.messages ?? 0,
    epochs: current ? [current] : [],
    mine: [],
    members,
    sign_keys: Object.fromEntries(members.map((m) => [m.user, m.sign_key])),
  };
}

test("rotationReason: first, a member gone, a user revoked, a joiner (from_join), the policy, else null", () => {
  assert.equal(rotationReason(view({ sealedTo: null }), NOW), "first");
  assert.equal(rotationReason(view({ members: [{ user: "alice" }] }), NOW), "member_removed");
  assert.equal(
    rotationReason(view({ members: [{ user: "alice" }, { user: "bob", revoked: true }] }), NOW),
    "user_revoked",
  );
  const joined = [{ user: "alice" }, { user: "bob" }, { user: "carol" }];
  assert.equal(rotationReason(view({ members: joined }), NOW), "member_added");
  // Under a shared history the joiner is sealed the epochs instead.
  assert.equal(rotationReason(view({ members: joined, policy: { history: "shared" } }), NOW), null);
  assert.deepEqual(joinersOf(view({ members: joined })), ["carol"]);
  // A member without an exchange key holds no key: nothing to rotate for.
  assert.equal(rotationReason(view({ members: [...joined.slice(0, 2), { user: "carol", kex: false }] }), NOW), null);
  assert.equal(rotationReason(view({ messages: 1000 }), NOW), "messages");
  assert.equal(rotationReason(view({ policy: { rotate_every_seconds: 3600 } }), NOW), "time");
  assert.equal(rotationReason(view({}), NOW), null);
  assert.deepEqual([...keyHoldersOf(view({ members: [{ user: "a" }, { user: "b", revoked: true }] })).keys()], ["a"]);
});

test("sanitize shows control, line-separator and bidi characters escaped; describeMessage marks a failure", () => {
  assert.equal(sanitize("a\u001b[2Jb\nc\u202ed\u0085"), "a\\u{1b}[2Jb\\nc\\u{202e}d\\u{85}");
  const line = describeMessage({
    seq: 7,
    time: STARTED,
    result: { kind: "bad_signature", detail: "no\u0007", sender: "bob\u001b", epoch: 1, counter: 2 },
  });
  assert.equal(line.line, `${STARTED} !! bad_signature from bob\\u{1b}: no\\u{7}`);
  assert.deepEqual(line.json, {
    seq: 7,
    time: STARTED,
    sender: "bob\u001b",
    epoch: 1,
    counter: 2,
    status: "bad_signature",
    detail: "no\\u{7}",
  });
});
