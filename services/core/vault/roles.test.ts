// Who may ask membershipd for the vault's actions, and the node role's subjects for them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { VaultActionArgs } from "../../../schemas/mod.ts";
import { isReadAction, roleAllows, VAULT_NODE_ACTIONS } from "../roles.ts";
import { permissionsFor } from "../permissions.ts";

test("a node may distribute, plan, fetch and report mismatches, not list every vault; monitors only read the status", () => {
  assert.deepEqual(
    [...VAULT_NODE_ACTIONS].sort(),
    Object.keys(VaultActionArgs)
      .filter((a) => a !== "vault.status")
      .sort(),
  );
  for (const a of VAULT_NODE_ACTIONS) assert.ok(roleAllows("node", a), a);
  assert.ok(!roleAllows("node", "vault.status"));
  assert.ok(roleAllows("monitor", "vault.status") && isReadAction("vault.status"));
  for (const a of VAULT_NODE_ACTIONS) assert.ok(!roleAllows("monitor", a) && !roleAllows("bootstrap", a), a);
});

test("a node publishes share requests to any guardian but receives only its own", () => {
  const p = permissionsFor("node", { key: "UKEY", node: "web-1" });
  assert.ok(p.pub.allow.includes("unibus.vault.*.share"));
  assert.ok(p.sub.allow.includes("unibus.vault.web-1.share"));
  assert.ok(!p.sub.allow.some((s) => s === "unibus.vault.*.share" || s === "unibus.vault.>"));
  for (const a of VAULT_NODE_ACTIONS) assert.ok(p.pub.allow.includes(`unibus.cmd.membership.${a}`), a);
  assert.ok(!p.pub.allow.includes("unibus.cmd.membership.vault.status"));
});
