// The invite token as people pass it around: bare, or inside `unibus node invite`'s output.
import { test } from "node:test";
import assert from "node:assert/strict";
import { INVITE_PREFIX, parseInviteToken } from "./enrollment.ts";

const token =
  INVITE_PREFIX +
  Buffer.from(
    JSON.stringify({
      v: 1,
      cluster: "unibus",
      urls: ["nats://127.0.0.1:4250"],
      secret: "a".repeat(43),
      creds: "-----BEGIN NATS USER JWT-----",
      ca: "0".repeat(64),
    }),
  ).toString("base64url");

test("a bare token and the CLI's whole output (token, blank line, # notes) parse alike", () => {
  const bare = parseInviteToken(token);
  const printed = parseInviteToken(
    `${token}\n\n# invite 0123456789ab: 1 use(s), expires …\n#   unibus-agent join --token <token>\n`,
  );
  assert.ok("token" in bare && "token" in printed);
  assert.deepEqual(printed, bare);
});

test("anything else is a problem named in one sentence, never a throw", () => {
  assert.deepEqual(parseInviteToken("hello"), { problem: `an invite token starts with ${INVITE_PREFIX}` });
  assert.deepEqual(parseInviteToken(`${INVITE_PREFIX}!!!`), {
    problem: "the invite token is damaged (not base64url JSON)",
  });
  const extra = INVITE_PREFIX + Buffer.from(JSON.stringify({ v: 2 })).toString("base64url");
  assert.deepEqual(parseInviteToken(extra), { problem: "the invite token is damaged (unexpected fields)" });
});
