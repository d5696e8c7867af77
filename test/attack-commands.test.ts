// Issue 19, attacks 7 and 9, replayed against a real membershipd (bin/membershipd, its own secured
// nats-server) and a real agent command endpoint (on a real nats-server):
// 7. one signed `node.invite` sent again while its first copy runs (ten copies 2 ms apart, then 50
//    at once): every copy gets the first one's reply, one invite is recorded, and every token handed
//    out is that invite's, so revoking it reaches every credential.
// 9. JSON nested 5,000 deep inside a command's args (and a join request): a structured refusal
//    before anything walks it, no stack in the log, and the process keeps serving.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  nodeCommandSubject,
  Reply,
  type Actor,
  type NodeAction,
  type CommandEnvelope,
  type TrustResult,
} from "../schemas/mod.ts";
import {
  CommandRecord,
  startNodeCommandService,
  TrustList,
  type NodeCommandService,
} from "../services/agent/commands/mod.ts";
import { fakeOps, gate, newUser } from "../services/agent/commands/testing.ts";
import { connectNats, parseCreds, readCredsFile } from "../services/bus/mod.ts";
import {
  FLEET_ID,
  eventSubject,
  inboxPrefix,
  isDomainError,
  signerFromSeed,
  type Signer,
} from "../services/core/mod.ts";
import { buildCommand } from "../services/cli/request.ts";
import { decodeInvite, joinRequest, nodeKeys } from "./enroll-helpers.ts";
import { clientFor, startNats, startSecurePlane, tempDir, type MembershipdHandle, type NatsHandle } from "./harness.ts";
import { cleanupMembershipd, startFreshMembershipd, waitUntil } from "./process-tools.ts";
import { signed } from "./signed-commands.ts";
import { subjectEvents } from "./vault-fleet.ts";

const DEPTH = 5000;
const deep = "[".repeat(DEPTH) + "]".repeat(DEPTH);

/** `json` with the first `"<marker>":0` replaced by `"<marker>":<5,000 nested arrays>`: what no JSON.stringify here could write. */
function nestDeep(json: string, marker: string): string {
  const at = `"${marker}":0`;
  assert.ok(json.includes(at), `${marker} in ${json.slice(0, 200)}`);
  return json.replace(at, `"${marker}":${deep}`);
}

function parseReply(text: string): Reply {
  const parsed = Reply.safeParse(JSON.parse(text));
  assert.ok(parsed.success, `malformed reply: ${text.slice(0, 300)}`);
  return parsed.data;
}

function refusedWith(r: Reply, code: string): void {
  assert.ok(!r.ok, `expected ${code}, got ${JSON.stringify(r).slice(0, 300)}`);
  assert.equal(r.error.code, code, JSON.stringify(r.error));
  assert.match(r.error.message, /^[^\n]+$/, "one sentence");
}

describe("attacks 7 and 9 against a real membershipd", { timeout: 240_000 }, () => {
  let md: MembershipdHandle;
  let nc: NatsConnection;
  let admin: Signer;
  let service: Awaited<ReturnType<typeof clientFor>>;

  const request = async (action: string, payload: string | Uint8Array, timeout = 20_000): Promise<Reply> =>
    parseReply((await nc.request(`unibus.cmd.membership.${action}`, payload, { timeout })).string());
  const send = (action: string, args: Record<string, unknown>) =>
    request(action, JSON.stringify(buildCommand(admin, "admin", action, args)));
  /** A connection with a token's bootstrap credential, or the server's refusal. */
  const connectWith = async (token: string): Promise<NatsConnection | Error> => {
    const creds = new TextEncoder().encode(decodeInvite(token).creds);
    return await connectNats({
      servers: md.natsUrl,
      name: "attack-7 bootstrap",
      caFile: join(md.dataDir, "tls", "ca.pem"),
      creds,
      inboxPrefix: inboxPrefix(parseCreds(creds).publicKey),
    }).catch((err: Error) => err);
  };
  const invitesIssued = async (note: string) =>
    (await subjectEvents(service.nc, service.jsm, eventSubject("fleet", FLEET_ID))).filter(
      (e) => e.type === "InviteIssued" && e.data.note === note,
    );

  before(async () => {
    md = await startFreshMembershipd();
    const creds = readCredsFile(join(md.dataDir, "admin.creds"));
    nc = await connectNats({
      servers: md.natsUrl,
      name: "attack-admin",
      caFile: join(md.dataDir, "tls", "ca.pem"),
      creds: creds.bytes,
      inboxPrefix: inboxPrefix(creds.publicKey),
    });
    admin = signerFromSeed(readFileSync(join(md.dataDir, "admin.nk"), "utf8").trim());
    service = await clientFor({ natsUrl: md.natsUrl, dataDir: md.dataDir });
  });

  after(async () => {
    await nc?.close();
    await service?.nc.close();
    await cleanupMembershipd(md);
  });

  /** Sends `copies` of one signed node.invite, `gapMs` apart, all in flight together; checks what the issue found. */
  async function replayInvite(note: string, copies: number, gapMs: number): Promise<void> {
    const cmd = buildCommand(admin, "admin", "node.invite", { expiry_s: 3600, uses: 1, note });
    const body = JSON.stringify(cmd);
    const inFlight: Promise<Reply>[] = [];
    for (let i = 0; i < copies; i++) {
      inFlight.push(request("node.invite", body));
      if (gapMs > 0) await sleep(gapMs);
    }
    const replies = await Promise.all(inFlight);
    const tokens = new Set(replies.filter((r) => r.ok).map((r) => (r as { result: { token: string } }).result.token));
    const codes = replies.map((r) => (r.ok ? "ok" : r.error.code));

    // Every copy answered with the first one's reply: one token, never a second run.
    assert.ok(
      replies.every((r) => r.ok),
      `every copy gets the reply of the first: ${JSON.stringify(codes)}`,
    );
    assert.equal(tokens.size, 1, `${tokens.size} different tokens for one command`);
    for (const r of replies) assert.deepEqual(r, replies[0]);

    // One invite recorded, and the credential handed out is the one it names.
    const issued = await invitesIssued(note);
    assert.equal(issued.length, 1, JSON.stringify(issued));
    for (const token of tokens) {
      assert.equal(
        parseCreds(new TextEncoder().encode(decodeInvite(token).creds)).publicKey,
        issued[0]!.data.bootstrap_key,
        "the token's identity is the recorded invite's",
      );
    }

    // Revoking the recorded invite reaches every credential that was handed out.
    const revoked = await send("node.invite.revoke", { hash: issued[0]!.data.hash });
    assert.ok(revoked.ok, JSON.stringify(revoked));
    for (const token of tokens) {
      const conn = await connectWith(token);
      if (!(conn instanceof Error)) await conn.close();
      assert.ok(
        conn instanceof Error && /authorization violation/i.test(conn.message),
        `a token of the revoked invite still connects: ${conn instanceof Error ? conn.message : "connected"}`,
      );
    }
  }

  test("attack 7 as written: ten copies of one signed node.invite, 2 ms apart, get one reply and one token; revoking the invite reaches it", async () => {
    await replayInvite("attack-7-ten", 10, 2);
  });

  test("attack 7, 50 copies in flight at once: one execution, 50 identical replies, one invite", async () => {
    await replayInvite("attack-7-fifty", 50, 0);
  });

  test("attack 9: a command whose args nest 5,000 deep is refused E_TOO_DEEP before anything walks it; no stack in the log; membershipd keeps serving", async () => {
    // A node.report's event data is free-form: the one place args may nest at all.
    const base = JSON.stringify(
      signed(
        admin,
        "node.report",
        { node: "n1", events: [{ type: "CommandReceived", data: { attack: 0 } }] },
        { actorId: "admin" },
      ),
    );
    for (let i = 0; i < 3; i++) refusedWith(await request("node.report", nestDeep(base, "attack")), "E_TOO_DEEP");
    // The same depth at the envelope's top level (an extra member) and as the whole body.
    refusedWith(
      await request(
        "user.list",
        nestDeep(JSON.stringify({ ...buildCommand(admin, "admin", "user.list", {}), extra: 0 }), "extra"),
      ),
      "E_TOO_DEEP",
    );
    refusedWith(await request("user.list", deep), "E_TOO_DEEP");
    assert.doesNotMatch(md.output(), /RangeError|Maximum call stack/, "no stack in membershipd's log");
    const list = await send("user.list", { limit: 1 });
    assert.ok(list.ok, JSON.stringify(list));
  });

  test("attack 9 on enrollment: a join request nesting 5,000 deep is refused E_TOO_DEEP", async () => {
    const invite = await send("node.invite", { expiry_s: 600, uses: 1, note: "attack-9-join" });
    assert.ok(invite.ok, JSON.stringify(invite));
    const token = (invite as { result: { token: string } }).result.token;
    const conn = await connectWith(token);
    assert.ok(!(conn instanceof Error), String(conn));
    try {
      const body = nestDeep(
        JSON.stringify({
          ...joinRequest(nodeKeys(), { node: "deep-1", secret: decodeInvite(token).secret }),
          attack: 0,
        }),
        "attack",
      );
      refusedWith(
        parseReply((await conn.request("unibus.enroll.join", body, { timeout: 20_000 })).string()),
        "E_TOO_DEEP",
      );
    } finally {
      await conn.close();
    }
    assert.doesNotMatch(md.output(), /RangeError|Maximum call stack/);
  });
});

describe("attacks 7 and 9 against a real agent command endpoint", { timeout: 60_000 }, () => {
  const NODE = "web-1";
  const operator = newUser();
  const actor: Actor = { id: "alice", key: operator.publicKey };
  let nats: NatsHandle;
  let nc: NatsConnection;
  let agentNc: NatsConnection;
  let svc: NodeCommandService;
  let record: CommandRecord;
  const ops = fakeOps(NODE);
  const logs: string[] = [];

  before(async () => {
    nats = await startNats({ encrypted: false });
    nc = await connectNats({ servers: nats.url, name: "operator" });
    agentNc = await connectNats({ servers: nats.url, name: `agent ${NODE}` });
    const dir = tempDir("unibus-attack9-agent-");
    const trust = new TrustList(
      join(dir, "trust.json"),
      async (): Promise<TrustResult> => ({ admins: [actor], at: new Date().toISOString() }),
    );
    await trust.refresh();
    record = new CommandRecord(join(dir, "commands.jsonl"));
    svc = await startNodeCommandService(agentNc, {
      node: NODE,
      version: "0.1.0",
      ops,
      trust,
      record,
      log: (l) => logs.push(l),
      onEvent: () => {},
    });
    await agentNc.flush();
  });

  after(async () => {
    await svc?.stop();
    record?.close();
    await agentNc?.close();
    await nc?.close();
    await nats?.stop();
  });

  const command = (action: string, args: Record<string, unknown>): CommandEnvelope =>
    signed(operator, action, { node: NODE, ...args }, { actorId: "alice" });
  const ask = async (action: string, payload: string): Promise<Reply> =>
    parseReply(
      (await nc.request(nodeCommandSubject(NODE, action as NodeAction), payload, { timeout: 10_000 })).string(),
    );

  test("attack 7 at the agent: 50 copies of one signed restart in flight while the first runs: it runs once, every copy gets its reply", async () => {
    const held = gate();
    ops.gate = held.promise;
    try {
      const body = JSON.stringify(command("restart", { service: "web" }));
      const before = ops.calls.length;
      const copies = Array.from({ length: 50 }, () => ask("restart", body));
      await waitUntil("the first copy running", () => ops.running === 1, 10_000);
      held.open();
      const replies = await Promise.all(copies);
      assert.ok(replies[0]!.ok, JSON.stringify(replies[0]));
      for (const r of replies) assert.deepEqual(r, replies[0]);
      assert.deepEqual(ops.calls.slice(before), ["restart web"]);
    } finally {
      ops.gate = null;
    }
  });

  test("an update whose manifest nests 5,000 deep is refused E_TOO_DEEP, nothing logs a stack, and the agent keeps serving", async () => {
    // `manifest` is the agent's one free-form argument.
    const body = nestDeep(JSON.stringify(command("update", { manifest: 0, signature: null })), "manifest");
    for (let i = 0; i < 3; i++) refusedWith(await ask("update", body), "E_TOO_DEEP");
    refusedWith(await ask("status", deep), "E_TOO_DEEP");
    assert.ok(!logs.some((l) => /RangeError|Maximum call stack/.test(l)), logs.join("\n"));
    const status = await ask("status", JSON.stringify(command("status", {})));
    assert.ok(status.ok, JSON.stringify(status));
  });
});

describe("attack 7's class: the invite handler mints a credential only for the invite it recorded", {
  timeout: 60_000,
}, () => {
  test("run twice for one command (a claim taken over after a crash), the second run records nothing and hands out no token", async () => {
    const plane = await startSecurePlane();
    try {
      const enrollment = plane.plane.auth!.enrollment;
      const admin = signerFromSeed(readFileSync(join(plane.dataDir, "admin.nk"), "utf8").trim());
      const cmd = buildCommand(admin, "admin", "node.invite", { expiry_s: 600, uses: 1, note: "rerun" });
      const args = { expiry_s: 600, uses: 1, note: "rerun" };
      const first = (await enrollment.invite(args, cmd)) as { token: string };
      const second = await enrollment.invite(args, cmd);
      assert.ok(isDomainError(second), `the second run handed out ${JSON.stringify(second).slice(0, 200)}`);
      assert.equal(second.code, "E_INTERRUPTED");
      const issued = (await subjectEvents(plane.plane.nc, plane.plane.jsm, eventSubject("fleet", FLEET_ID))).filter(
        (e) => e.type === "InviteIssued" && e.data.note === "rerun",
      );
      assert.equal(issued.length, 1);
      assert.equal(
        parseCreds(new TextEncoder().encode(decodeInvite(first.token).creds)).publicKey,
        issued[0]!.data.bootstrap_key,
      );
    } finally {
      await plane.stop();
    }
  });
});
