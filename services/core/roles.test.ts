// Who may ask membershipd for what: the node actions in particular.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MembershipActions, NodeReportArgs } from "../../schemas/mod.ts";
import { isReadAction, NODE_ACTIONS, READ_ACTIONS, roleAllows } from "./roles.ts";

const nodeActions = Object.keys(NodeReportArgs);

test("the node actions are exactly the schema's NodeReportArgs", () => {
  assert.deepEqual([...NODE_ACTIONS].sort(), nodeActions.sort());
});

test("a node may send exactly node.report and node.trust", () => {
  for (const a of nodeActions) assert.ok(roleAllows("node", a), a);
  for (const a of MembershipActions) assert.ok(!roleAllows("node", a), a);
});

test("an admin may do every membership action and read the trust list, but never report as a node", () => {
  for (const a of MembershipActions) assert.ok(roleAllows("admin", a), a);
  assert.ok(roleAllows("admin", "node.trust"));
  assert.ok(!roleAllows("admin", "node.report"));
});

test("monitors, services and bootstrap identities send no node action", () => {
  for (const role of ["monitor", "service", "bootstrap"] as const)
    for (const a of nodeActions) assert.ok(!roleAllows(role, a), `${role} ${a}`);
  assert.ok(!READ_ACTIONS.has("node.trust"), "READ_ACTIONS is what monitors may send");
});

test("node.trust is a read (its reply is not kept with the nonce); node.report is a write", () => {
  assert.ok(isReadAction("node.trust"));
  assert.ok(!isReadAction("node.report"));
  for (const a of READ_ACTIONS) assert.ok(isReadAction(a), a);
});

test("audit.read (an admin's own audit consumer) is an admin's alone", () => {
  assert.ok(roleAllows("admin", "audit.read"));
  for (const role of ["monitor", "node", "forwarder", "bootstrap", "service"] as const)
    assert.ok(!roleAllows(role, "audit.read"), role);
  assert.ok(isReadAction("audit.read"), "a copy makes the consumer again: harmless, so its reply is not kept");
});
