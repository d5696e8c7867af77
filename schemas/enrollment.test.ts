// The invite token as people pass it around: bare, or inside `unibus node invite`'s output.
import { test } from "node:test";
import assert from "node:assert/strict";
import { INVITE_PREFIX, parseInviteToken } from "./enrollment.ts";
import { WgEndpoint, WgPublicKey } from "./ids.ts";

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

test("WireGuard keys and endpoints: 32 bytes of base64; host:port with a real host and port", () => {
  const key = Buffer.alloc(32, 7).toString("base64");
  assert.ok(WgPublicKey.safeParse(key).success);
  for (const bad of [
    "",
    key.slice(1),
    `${key}=`,
    Buffer.alloc(33).toString("base64"),
    key.replace("=", "A"),
    "A".repeat(43) + "B=",
  ])
    assert.equal(WgPublicKey.safeParse(bad).success, false, bad);
  for (const good of ["203.0.113.5:51820", "wg.example.org:1", "[2001:db8::1]:51820", "node-1:65535"])
    assert.ok(WgEndpoint.safeParse(good).success, good);
  for (const bad of [
    "203.0.113.5",
    "203.0.113.5:0",
    "203.0.113.5:65536",
    "256.0.0.1:51820",
    "1.2.3:51820",
    "2001:db8::1:51820",
    "[not-v6]:51820",
    "-bad.example:51820",
    "a..b:51820",
    `${"a".repeat(64)}.example:51820`,
    "host :51820",
    "host:51820 ",
    `${"a.".repeat(130)}b:1`,
  ])
    assert.equal(WgEndpoint.safeParse(bad).success, false, bad);
});
