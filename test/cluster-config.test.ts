// membershipd in cluster mode refuses to start with partial route security, in one line naming
// what is missing, before it starts any nats-server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { startMembershipd, tempDir } from "./harness.ts";

test("membershipd --routes without route certificates or secret refuses to start, naming each part", async () => {
  const dataDir = tempDir("unibus-md-routes-");
  const err = await startMembershipd({ dataDir, args: ["--routes", "10.0.0.2:6250,10.0.0.3:6250"] }).then(
    () => null,
    (e) => e,
  );
  assert.ok(err, "membershipd started");
  assert.equal(err.exitCode, 1);
  const lines = (err.output as string).trim().split("\n");
  assert.equal(lines.length, 1, err.output);
  assert.match(
    lines[0]!,
    /^membershipd: refusing to start a cluster with partial route security: missing the route CA \(.*route-ca\.pem\), the route certificate \(.*\), the route key \(.*\), the route secret \(.*route\.secret or \$UNIBUS_ROUTE_SECRET\)$/,
  );
  assert.ok(!existsSync(join(dataDir, "nats", "server.conf")), "no server config was rendered");
});
