import { test } from "node:test";
import assert from "node:assert/strict";
import { checkControl, MAX_CONTROL_BYTES, quietLog, signControl } from "./control-message.ts";
import { newUserSeed, signerFromSeed } from "./signing/crypto.ts";

const membershipd = signerFromSeed(newUserSeed());
const other = signerFromSeed(newUserSeed());
const bytes = (s: string) => new TextEncoder().encode(s);

test("a control message is obeyed only when membershipd signed it for this subject, just now", () => {
  const at = Date.parse("2026-12-06T00:00:00.000Z");
  const good = signControl("unibus.cluster.writes", { pause_ms: 5 }, membershipd, new Date(at));
  assert.deepEqual(checkControl("unibus.cluster.writes", bytes(good), [membershipd.publicKey], at), {
    ok: true,
    body: { pause_ms: 5 },
    at,
  });
  const refused = (subject: string, data: string, keys = [membershipd.publicKey], now = at) => {
    const c = checkControl(subject, bytes(data), keys, now);
    assert.ok(!c.ok, data.slice(0, 80));
    return c.reason;
  };
  assert.match(refused("unibus.trust.changed", good), /signed for unibus\.cluster\.writes/);
  assert.match(refused("unibus.cluster.writes", good, [other.publicKey]), /not membershipd's/);
  assert.match(refused("unibus.cluster.writes", good, [membershipd.publicKey], at + 61_000), /outside/);
  assert.match(refused("unibus.cluster.writes", good.replace('"pause_ms":5', '"pause_ms":600000')), /bad signature/);
  assert.match(
    refused(
      "unibus.cluster.writes",
      signControl("unibus.cluster.writes", { pause_ms: 5 }, other, new Date(at)).replace(
        other.publicKey,
        membershipd.publicKey,
      ),
    ),
    /bad signature/,
  );
  assert.match(refused("unibus.cluster.writes", JSON.stringify({ pause_ms: 600_000 })), /not a signed control message/);
  assert.match(refused("unibus.cluster.writes", ""), /empty/);
  assert.match(refused("unibus.cluster.writes", "x".repeat(MAX_CONTROL_BYTES + 1)), /limit is 4096/);
  assert.match(refused("unibus.cluster.writes", "[".repeat(2000) + "]".repeat(2000)), /levels deep/);
});

test("quietLog writes the first refusal at once, then one line per interval with the count left out", () => {
  const lines: string[] = [];
  let t = 0;
  const log = quietLog(
    (l) => lines.push(l),
    10_000,
    () => t,
  );
  log("a");
  log("b");
  log("c");
  t = 10_000;
  log("d");
  assert.deepEqual(lines, ["a", "d (and 2 more since the last such line)"]);
});
