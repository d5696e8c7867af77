// ChainVerifier on node events: accepted like any other event membershipd signs; a CommandReceived
// must also carry a command whose own signature holds.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChainVerifier } from "./audit.ts";
import { eventSubject } from "./blind.ts";
import { newUserSeed, signerFromSeed } from "./signing/crypto.ts";
import { eventHash, signCommand, signEvent, systemInputs } from "./signing/envelope.ts";

const service = signerFromSeed(newUserSeed());
const admin = signerFromSeed(newUserSeed());
const node = signerFromSeed(newUserSeed());
const ts = new Date().toISOString();

function chain(events: { type: string; kind: string; aggregate: string; data: Record<string, unknown> }[]) {
  const heads = new Map<string, string | null>();
  return events.map((e, i) => {
    const key = `${e.kind}.${e.aggregate}`;
    const actor =
      e.kind === "node"
        ? { id: `node:${e.aggregate}`, key: node.publicKey }
        : { id: "membershipd", key: service.publicKey };
    const env = signEvent(
      { id: `c${i}:0`, ts, actor, causation: `c${i}`, correlation: `c${i}`, prev: heads.get(key) ?? null, ...e },
      service,
    );
    heads.set(key, eventHash(env));
    return { seq: i + 1, subject: eventSubject(e.kind, e.aggregate), env };
  });
}

function verify(events: ReturnType<typeof chain>) {
  const v = new ChainVerifier();
  for (const e of events) v.check(e.seq, e.subject, e.env);
  return v.findings;
}

const genesis = {
  type: "SystemInitialized",
  kind: "system",
  aggregate: "genesis",
  data: { cluster: "c", service_key: service.publicKey },
};
const command = signCommand(
  { action: "restart", args: { node: "web-1", service: "api" }, actor: { id: "alice", key: admin.publicKey } },
  admin,
  systemInputs,
);
const reported = (seq: number, type: string, data: Record<string, unknown>) => ({
  type,
  kind: "node",
  aggregate: "web-1",
  data: { node: "web-1", seq, at: ts, ...data },
});

test("node events signed by membershipd verify, with the node as their actor", () => {
  const findings = verify(
    chain([
      genesis,
      reported(1, "ServiceStarted", { service: "api", pid: 7 }),
      reported(2, "CommandReceived", { command }),
      reported(3, "CommandCompleted", {
        command: command.id,
        actor: command.actor,
        action: "restart",
        ok: true,
        code: null,
        message: null,
        ms: 3,
      }),
    ]),
  );
  assert.deepEqual(findings, []);
});

test("a CommandReceived whose command was altered is a bad_signature finding", () => {
  const forged = { ...command, args: { node: "web-1", service: "db" } };
  const findings = verify(chain([genesis, reported(1, "CommandReceived", { command: forged })]));
  assert.equal(findings.length, 1);
  assert.equal(findings[0]!.problem, "bad_signature");
  assert.match(findings[0]!.detail, new RegExp(`command ${command.id}`));
});
