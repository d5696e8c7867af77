// unibus-agent's enrollment as real processes against a real membershipd: join with an invite,
// enroll-wait with a code, a CA that does not match the invite, a retry after a crash, and a
// revoked node cut off. The protocol-level attacks are in test/enrollment.test.ts.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { INVITE_PREFIX } from "../schemas/mod.ts";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, readCredsFile } from "../services/bus/mod.ts";
import { inboxPrefix, parseWgKeyFile, signerFromSeed, wgPublicKeyOf, type Signer } from "../services/core/mod.ts";
import { buildCommand, resultOf, sendCommand } from "../services/cli/request.ts";
import { ROOT, runAgent, runCli, tempDir, type CliResult, type MembershipdHandle } from "./harness.ts";
import { cleanupMembershipd, startFreshMembershipd } from "./process-tools.ts";

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** A token with one field changed (the CA fingerprint, say), still well-formed. */
function alteredToken(token: string, change: Record<string, unknown>): string {
  const body = JSON.parse(Buffer.from(token.slice(INVITE_PREFIX.length), "base64url").toString("utf8"));
  return INVITE_PREFIX + Buffer.from(JSON.stringify({ ...body, ...change })).toString("base64url");
}

describe("unibus-agent enrollment", () => {
  let md: MembershipdHandle | undefined;
  let admin: { nc: NatsConnection; signer: Signer } | undefined;
  const cli = (args: string[]) => runCli(["--json", ...args], { dataDir: md!.dataDir });
  // The admin's commands go through one in-process connection (a CLI process costs seconds of
  // start-up on a loaded machine); the CLI itself is exercised where the README uses it.
  const send = async (action: string, args: Record<string, unknown>) =>
    resultOf(
      await sendCommand(
        admin!.nc,
        `unibus.cmd.membership.${action}`,
        buildCommand(admin!.signer, "admin", action, args),
        10_000,
      ),
    );
  const invite = async (uses = 1) => (await send("node.invite", { uses })).token as string;
  const nodes = async () =>
    (await send("node.list", {})).items as { node: string; status: string; address: string; sign_key: string }[];
  const tokenFile = (token: string) => {
    const f = join(tempDir("unibus-token-"), "invite");
    writeFileSync(f, token, { mode: 0o600 });
    return f;
  };

  before(async () => {
    md = await startFreshMembershipd();
    const creds = readCredsFile(join(md.dataDir, "admin.creds"));
    const nc = await connectNats({
      servers: md.natsUrl,
      name: "test-admin",
      caFile: join(md.dataDir, "tls", "ca.pem"),
      creds: creds.bytes,
      inboxPrefix: inboxPrefix(creds.publicKey),
    });
    admin = { nc, signer: signerFromSeed(readFileSync(join(md.dataDir, "admin.nk"), "utf8").trim()) };
  });
  after(async () => {
    await admin?.nc.close();
    await cleanupMembershipd(md);
  });

  test("join with an invite (token file): keys and creds 0600, the node is listed and can connect as itself", async () => {
    const dir = tempDir("unibus-agent-");
    const token = JSON.parse(ok(await cli(["node", "invite", "--note", "web-1"]), "node invite").stdout)
      .token as string;
    const r = ok(
      await runAgent([
        "--data-dir",
        dir,
        "--name",
        "web-1",
        "--label",
        "role=web",
        "--wg-endpoint",
        "web-1.example.org:51820",
        "join",
        "--token-file",
        tokenFile(token),
      ]),
      "join",
    );
    assert.match(r.stdout, /^enrolled as web-1 \(10\.0\.0\.\d+\) in cluster unibus; credentials in .*node\.creds\n$/);
    for (const f of ["node.nk", "kex.nk", "node.creds", "wg.key"])
      assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    const listed = (
      JSON.parse(ok(await cli(["node", "list"]), "node list").stdout).items as {
        node: string;
        status: string;
        address: string;
      }[]
    ).find((n) => n.node === "web-1");
    assert.equal(listed?.status, "active");
    const status = JSON.parse(ok(await runAgent(["--data-dir", dir, "--json", "status"]), "status").stdout);
    assert.deepEqual({ node: status.node, address: status.address }, { node: "web-1", address: listed!.address });
    // The seed never left: nothing in the stream or the reply carries it (it is only in node.nk).
    const seed = readFileSync(join(dir, "node.nk"), "utf8").trim();
    const tail = ok(await cli(["events", "tail", "--lines", "50"]), "events tail").stdout;
    assert.ok(!tail.includes(seed), "the node's seed appears in the event stream");
    // Its WireGuard key pair likewise: the public key is in NodeEnrolled, the private key only in wg.key.
    const wgFile = readFileSync(join(dir, "wg.key"));
    const wgPrivate = wgFile.toString("utf8").trim();
    const enrolled = tail
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { type: string; data: Record<string, unknown> })
      .find((e) => e.type === "NodeEnrolled" && e.data.node === "web-1");
    assert.deepEqual(
      [enrolled?.data.wg_key, enrolled?.data.wg_endpoint],
      [wgPublicKeyOf(parseWgKeyFile(wgFile)!), "web-1.example.org:51820"],
    );
    assert.ok(!tail.includes(wgPrivate), "the node's WireGuard private key appears in the event stream");
  });

  test("the token read from stdin works, and a second run on an enrolled data dir is refused", async () => {
    const dir = tempDir("unibus-agent-");
    ok(
      await runAgent(["--data-dir", dir, "--name", "web-2", "join", "--token", "-"], await invite()),
      "join from stdin",
    );
    const again = await runAgent(["--data-dir", dir, "--name", "web-2", "join", "--token", "-"], await invite());
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already enrolled as web-2 .*\[E_ALREADY_ENROLLED\]/);
  });

  test("a CA that does not match the invite's fingerprint is refused before anything is sent", async () => {
    const token = await invite();
    const dir = tempDir("unibus-agent-");
    const r = await runAgent([
      "--data-dir",
      dir,
      "--name",
      "mitm-1",
      "join",
      "--token-file",
      tokenFile(alteredToken(token, { ca: "0".repeat(64) })),
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /certificate chain without the CA the invite names .*\[E_CA_MISMATCH\]/);
    assert.ok(!existsSync(join(dir, "node.creds")));
    assert.equal(
      (await nodes()).some((n) => n.node === "mitm-1"),
      false,
    );
    // The untouched token still has its one use: nothing reached membershipd.
    ok(
      await runAgent([
        "--data-dir",
        tempDir("unibus-agent-"),
        "--name",
        "mitm-2",
        "join",
        "--token-file",
        tokenFile(token),
      ]),
      "the genuine token still works",
    );
  });

  test("a revoked invite: the server refuses its bootstrap credential, which the agent names (E_INVITE_REFUSED, exit 1)", async () => {
    const { token, hash } = (await send("node.invite", { uses: 1 })) as { token: string; hash: string };
    await send("node.invite.revoke", { hash });
    const dir = tempDir("unibus-agent-");
    const r = await runAgent(["--data-dir", dir, "--name", "revoked-1", "join", "--token-file", tokenFile(token)]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /refused the invite's bootstrap credential .*\[E_INVITE_REFUSED\]/);
    assert.ok(!existsSync(join(dir, "node.creds")));
  });

  test("a damaged token is a clear error (exit 1), a missing one a usage error (exit 2)", async () => {
    const dir = tempDir("unibus-agent-");
    const damaged = await runAgent(["--data-dir", dir, "join", "--token", "-"], `${INVITE_PREFIX}not-json`);
    assert.equal(damaged.code, 1);
    assert.match(damaged.stderr, /the invite token is damaged .*\[E_BAD_TOKEN\]/);
    const missing = await runAgent(["--data-dir", dir, "join"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /\[E_USAGE\]/);
  });

  test("a join that crashed after enrolling (no creds written) is completed by running join again", async () => {
    const token = await invite();
    const dir = tempDir("unibus-agent-");
    ok(
      await runAgent(["--data-dir", dir, "--name", "crash-1", "join", "--token-file", tokenFile(token)]),
      "first join",
    );
    // As if the agent died after membershipd answered but before it saved anything: keys stay.
    for (const f of ["node.creds", "node.json", "ca.pem"]) rmSync(join(dir, f));
    const retry = ok(
      await runAgent(["--data-dir", dir, "--name", "crash-1", "join", "--token-file", tokenFile(token)]),
      "retry with the used token",
    );
    assert.match(retry.stdout, /enrolled as crash-1/);
    assert.equal((await nodes()).filter((n) => n.node === "crash-1").length, 1);
  });

  test("enroll-wait prints a code; `unibus node enroll --code` delivers the sealed config", async () => {
    const bundle = (await send("node.wait-bundle", {})).bundle as string;
    const dir = tempDir("unibus-agent-");
    const proc = spawn(
      join(ROOT, "bin/unibus-agent"),
      ["--data-dir", dir, "--name", "db-1", "enroll-wait", "--bundle", "-"],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    proc.stdin.end(bundle);
    let out = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.stderr.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((r) => proc.once("exit", r));
    const deadline = Date.now() + 30_000;
    while (!/registration code: (\w{4})-(\w{4})/.test(out)) {
      assert.ok(Date.now() < deadline, `no code printed:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const [, a, b] = /registration code: (\w{4})-(\w{4})/.exec(out)!;
    const wrong = await cli(["node", "enroll", "--code", "AAAAAAAA", "--token", await invite()]);
    assert.equal(wrong.code, 1, "a code nobody waits with is refused");
    // The announcement may still be on its way: retry the right code briefly.
    let enrolled: CliResult | undefined;
    for (let i = 0; i < 20 && enrolled?.code !== 0; i++) {
      if (i) await new Promise((r) => setTimeout(r, 500));
      enrolled = await cli(["node", "enroll", "--code", `${a}${b}`, "--token", await invite()]);
    }
    ok(enrolled!, "node enroll --code");
    assert.equal(await exited, 0, out);
    assert.match(out, /enrolled as db-1 \(10\.0\.0\.\d+\)/);
    assert.equal((await nodes()).find((n) => n.node === "db-1")?.status, "active");
  });

  test("`unibus node revoke` cuts the node's live connection within 2 s, and it cannot reconnect", async () => {
    const dir = tempDir("unibus-agent-");
    ok(
      await runAgent(["--data-dir", dir, "--name", "bad-1", "join", "--token-file", tokenFile(await invite())]),
      "join",
    );
    const creds = readFileSync(join(dir, "node.creds"));
    const key = (await nodes()).find((n) => n.node === "bad-1")!.sign_key;
    const connect = () =>
      connectNats({
        servers: md!.natsUrl,
        name: "bad-1",
        caFile: join(dir, "ca.pem"),
        creds,
        inboxPrefix: inboxPrefix(key),
        timeoutMs: 3000,
      });
    const nc = await connect();
    // The cut is the server dropping the connection (the first disconnect): `closed()` would also
    // wait out the client's own reconnect attempts, which the server then refuses.
    const closed = (async () => {
      for await (const st of nc.status()) if (st.type === "disconnect" || st.type === "close") break;
      return Date.now();
    })();
    ok(await cli(["node", "revoke", "bad-1", "--reason", "test"]), "node revoke");
    const replied = Date.now();
    const cutAt = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 10_000))]);
    assert.notEqual(cutAt, -1, "the connection was not cut within 10 s");
    // Negative: cut before the CLI had its reply (membershipd pushes the revocation, then answers).
    assert.ok(cutAt - replied < 2000, `cut ${cutAt - replied} ms after the revoke command's reply`);
    await assert.rejects(connect(), /authoriz|revoked|authentic/i);
    assert.equal((await nodes()).find((n) => n.node === "bad-1")?.status, "revoked");
    await nc.close();
  });
});
