// Apps end to end, as real processes: membershipd (embedded nats-server, operator mode, TLS), an
// enrolled `unibus-agent run` as root (each app its own UID, real bwrap sandboxes with Landlock
// port rules), and the CLI. `app publish` signs with a 0600 key (and once with the real minisign
// tool) and checks the signature against the trusted release keys before storing anything;
// `app install` reviews the permissions, installs the dependency first, and the agent converges;
// each app's sandbox refuses what its manifest does not grant (write outside its volumes, reach the
// network, listen on another port, read the other app's data); settings, upgrades that widen,
// a failing upgrade rolled back, removals, a node that was offline, and an app rollout.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { runAgent, runCli, tempDir, type MembershipdHandle } from "./harness.ts";
import {
  cleanupMembershipd,
  startAgentDaemon,
  startFreshMembershipd,
  stopAgentDaemon,
  waitUntil,
  type AgentDaemon,
} from "./process-tools.ts";

const NODE = "apps-1";
const ROOT = join(import.meta.dirname, "..");

/** A port nothing listens on now (the kernel's pick, released at once). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** An app directory: its unibus-app.json and files (scripts made executable). */
function appDir(root: string, manifest: Record<string, unknown>, files: Record<string, string>): string {
  const dir = join(root, `${manifest.name}-${manifest.version}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "unibus-app.json"), JSON.stringify(manifest));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text, { mode: 0o755 });
  return dir;
}

// The store app: writes its greeting setting and its UID into its volume, then stays up.
const STORE_JS = `
const fs = require("node:fs");
const dir = process.env.UNIBUS_VOLUME_DATA;
fs.writeFileSync(dir + "/greeting", process.env.UNIBUS_SETTING_GREETING ?? "");
fs.writeFileSync(dir + "/uid", String(process.getuid()));
fs.writeFileSync(dir + "/secret", "store's own data");
setInterval(() => {}, 1 << 30);
`;

// The web app: serves on its declared port and records what its sandbox refused it.
const WEB_JS = `
const fs = require("node:fs");
const net = require("node:net");
const http = require("node:http");
const out = process.env.UNIBUS_VOLUME_WWW;
const [port, other, hostPort, storeData] = process.argv.slice(2).map((a, i) => (i < 3 ? Number(a) : a));
const results = {};
const attempt = (name, f) => { try { f(); results[name] = "allowed"; } catch (e) { results[name] = e.code ?? String(e); } };
attempt("write_code", () => fs.writeFileSync(__dirname + "/x", "x"));
attempt("write_var_tmp", () => fs.writeFileSync("/var/tmp/unibus-app-test", "x"));
attempt("read_store", () => fs.readFileSync(storeData + "/secret"));
const listenOther = new Promise((res) => {
  const s = net.createServer();
  s.once("error", (e) => res(e.code));
  s.listen(other, "127.0.0.1", () => { s.close(); res("allowed"); });
});
const connectOut = new Promise((res) => {
  const c = net.connect(hostPort, "127.0.0.1");
  c.once("connect", () => { c.destroy(); res("allowed"); });
  c.once("error", (e) => res(e.code));
  setTimeout(() => { c.destroy(); res("timeout"); }, 2000);
});
Promise.all([listenOther, connectOut]).then(([l, c]) => {
  results.listen_undeclared = l;
  results.connect_out = c;
  fs.writeFileSync(out + "/results.json", JSON.stringify(results));
  http.createServer((req, res) => res.end(process.env.UNIBUS_APP_VERSION)).listen(port, "127.0.0.1");
});
`;

describe("apps, end to end", { timeout: 420_000 }, () => {
  let md: MembershipdHandle | undefined;
  let agent: AgentDaemon | undefined;
  let hostServer: Server | undefined;
  let hostPort = 0;
  let webPort = 0;
  let otherPort = 0;
  const dir = tempDir("unibus-apps-agent-");
  const work = tempDir("unibus-apps-work-");
  const cli = (args: string[]) => runCli(["--json", ...args], { dataDir: md!.dataDir });
  const key = () => join(work, "release.key");
  const status = async (app?: string) => {
    const r = await cli(["app", "status", ...(app ? [app] : []), "--node", NODE]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).items as any[];
  };
  const running = async (app: string, version: string) =>
    (await status(app)).some((r) => r.actual?.state === "running" && r.actual.version === version);
  const volume = (app: string, name: string) => join(dir, "apps", app, "volumes", name);
  /** waitUntil, and on a timeout what membershipd and the agent said, for the failure's message. */
  const waitFor = async (what: string, cond: () => boolean | Promise<boolean>, ms: number) => {
    try {
      await waitUntil(what, cond, ms, 250);
    } catch (err) {
      const st = await cli(["app", "status"]).catch(() => null);
      throw new Error(`${(err as Error).message}\napp status: ${st?.stdout}\nagent: ${agent?.out().slice(-3000)}`);
    }
  };

  const store = (version: string, extra: Record<string, unknown> = {}) =>
    appDir(
      work,
      {
        name: "store",
        version,
        description: "keeps data",
        services: [{ name: "main", command: "/usr/bin/node", args: ["store.js"], restart: { policy: "always" } }],
        permissions: { volumes: [{ name: "data" }] },
        settings: {
          type: "object",
          properties: { greeting: { type: "string", default: "hi" } },
          additionalProperties: false,
        },
        ...extra,
      },
      { "store.js": STORE_JS },
    );
  const web = (version: string, network: Record<string, unknown>, script = WEB_JS) =>
    appDir(
      work,
      {
        name: "web",
        version,
        description: "serves pages",
        services: [
          {
            name: "http",
            command: "/usr/bin/node",
            args: ["web.js", String(webPort), String(otherPort), String(hostPort), volume("store", "data")],
            restart: { policy: "never" },
          },
        ],
        permissions: { network, volumes: [{ name: "www" }] },
        dependencies: { store: "^1.0.0" },
      },
      { "web.js": script },
    );

  before(async () => {
    [webPort, otherPort] = [await freePort(), await freePort()];
    hostServer = createServer((s) => s.end());
    await new Promise<void>((r) => hostServer!.listen(0, "127.0.0.1", r));
    hostPort = (hostServer.address() as { port: number }).port;
    md = await startFreshMembershipd();
    const invite = await cli(["node", "invite"]);
    assert.equal(invite.code, 0, invite.stderr);
    const joined = await runAgent(
      ["--data-dir", dir, "--name", NODE, "--label", "role=apps", "join", "--token", "-"],
      JSON.parse(invite.stdout).token,
    );
    assert.equal(joined.code, 0, joined.stderr);
    execFileSync("minisign", ["-G", "-W", "-p", join(work, "release.pub"), "-s", key()], { stdio: "ignore" });
    chmodSync(key(), 0o600);
    writeFileSync(join(dir, "release-keys.pub"), readFileSync(join(work, "release.pub")), { mode: 0o644 });
    writeFileSync(join(md.dataDir, "release-keys.pub"), readFileSync(join(work, "release.pub")), { mode: 0o644 });
    // A key nobody trusts.
    execFileSync("minisign", ["-G", "-W", "-p", join(work, "other.pub"), "-s", join(work, "other.key")], {
      stdio: "ignore",
    });
    chmodSync(join(work, "other.key"), 0o600);
    agent = startAgentDaemon(dir);
    await waitUntil("the agent to report", async () => (await cli(["node", "status", NODE])).code === 0, 60_000, 250);
  });

  after(async () => {
    await stopAgentDaemon(agent);
    hostServer?.close();
    await cleanupMembershipd(md);
  });

  test("publish: signed with a 0600 key, and once with the minisign tool; untrusted and tampered apps store nothing", async () => {
    const pub = await cli(["app", "publish", store("1.0.0"), "--key", key()]);
    assert.equal(pub.code, 0, pub.stdout + pub.stderr);
    assert.equal(JSON.parse(pub.stdout).published, true);

    // The real minisign tool signs the canonical manifest `app manifest` wrote.
    const made = await cli(["app", "manifest", web("1.0.0", { listen: [{ name: "http", port: 0 }] }), "--out", work]);
    assert.equal(made.code, 2, "a port 0 manifest is refused by the schema");
    const webDir = web("1.0.0", { listen: [{ name: "http", port: webPort }] });
    const m = await cli(["app", "manifest", webDir, "--out", work]);
    assert.equal(m.code, 0, m.stderr);
    const { tarball, manifest } = JSON.parse(m.stdout);
    execFileSync("minisign", ["-S", "-s", key(), "-m", manifest], { stdio: "ignore" });
    const pre = await cli(["app", "publish", tarball, "--manifest", manifest]);
    assert.equal(pre.code, 0, pre.stdout + pre.stderr);

    const untrusted = await cli(["app", "publish", store("1.0.1"), "--key", join(work, "other.key")]);
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.stderr, /E_APP_WRONG_KEY/);
    const tampered = JSON.parse(readFileSync(manifest, "utf8"));
    tampered.permissions.network.outbound = true;
    writeFileSync(manifest, JSON.stringify(tampered));
    const bad = await cli(["app", "publish", tarball, "--manifest", manifest, "--signature", `${manifest}.minisig`]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /E_APP_BAD_SIGNATURE/);

    rmSync(`${manifest}.minisig`);
    const unsigned = await cli(["app", "publish", tarball, "--manifest", manifest]);
    assert.notEqual(unsigned.code, 0);
    assert.match(unsigned.stderr, /E_APP_UNSIGNED/);

    const list = await cli(["app", "list"]);
    assert.deepEqual(
      JSON.parse(list.stdout).items.map((i: any) => `${i.name} ${i.version}`),
      ["store 1.0.0", "web 1.0.0"],
    );
  });

  test("install refuses without a yes, an unknown app, a range nothing satisfies and settings the schema refuses", async () => {
    const noYes = await cli(["app", "install", "web", "--node", NODE]);
    assert.equal(noYes.code, 2, noYes.stderr);
    assert.match(noYes.stderr, /E_CONFIRM_REQUIRED/);
    assert.match(noYes.stderr, /listens on TCP/, "the review is printed before the question");
    for (const [args, code] of [
      [["app", "install", "nope", "--node", NODE, "--yes"], /E_APP_NOT_FOUND/],
      [["app", "install", "web@^2", "--node", NODE, "--yes"], /E_APP_NO_MATCH/],
      [["app", "install", "store", "--node", NODE, "--set", "colour=red", "--yes"], /E_APP_SETTINGS/],
    ] as const) {
      const r = await cli([...args]);
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(r.stderr, code);
    }
    assert.deepEqual(await status(), [], "nothing was written");
  });

  test("install: the dependency first, each app its own UID, and each sandbox refuses what the manifest does not grant", async () => {
    const r = await cli(["app", "install", "web@^1", "--node", NODE, "--yes"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /install store 1\.0\.0 \(a dependency\)/);
    await waitFor(
      "store and web to run",
      async () => (await running("store", "1.0.0")) && (await running("web", "1.0.0")),
      90_000,
    );
    assert.equal(readFileSync(join(volume("store", "data"), "greeting"), "utf8"), "hi");
    await waitFor("web's results", () => existsSync(join(volume("web", "www"), "results.json")), 30_000);
    const results = JSON.parse(readFileSync(join(volume("web", "www"), "results.json"), "utf8"));
    assert.match(results.write_code, /^(EROFS|EACCES)$/, "its own code is read-only");
    assert.match(results.write_var_tmp, /^(EROFS|ENOENT|EACCES)$/, "nothing outside its volumes is writable");
    assert.match(results.read_store, /^(ENOENT|EACCES)$/, "the other app's data is out of reach");
    assert.equal(results.listen_undeclared, "EACCES", "only the declared port may be bound");
    assert.match(results.connect_out, /^(EACCES|ECONNREFUSED|ENETUNREACH)$/, "no outbound permission");
    assert.notEqual(results.connect_out, "allowed");
    assert.equal(await (await fetch(`http://127.0.0.1:${webPort}/`)).text(), "1.0.0");
    const storeUid = statSync(volume("store", "data")).uid;
    const webUid = statSync(volume("web", "www")).uid;
    assert.notEqual(storeUid, webUid, "two apps never share a UID");
    assert.notEqual(storeUid, 0);
    assert.equal(readFileSync(join(volume("store", "data"), "uid"), "utf8"), String(storeUid));
    assert.equal(statSync(volume("store", "data")).mode & 0o077, 0, "an app's volume is its own (0700)");
  });

  test("node status shows desired beside running; app config set restarts the app with the new settings", async () => {
    const ns = await runCli(["node", "status", NODE], { dataDir: md!.dataDir });
    assert.equal(ns.code, 0, ns.stderr);
    assert.match(ns.stdout, /apps \(desired beside running\)/);
    assert.match(ns.stdout, /web\s+1\.0\.0\s+1\.0\.0\s+running/);
    const set = await cli(["app", "config", "set", "store", "greeting=hello", "--node", NODE]);
    assert.equal(set.code, 0, set.stderr);
    await waitFor(
      "the new greeting",
      () => readFileSync(join(volume("store", "data"), "greeting"), "utf8") === "hello",
      60_000,
    );
    const wrong = await cli(["app", "config", "set", "store", "greeting=5", "colour=red", "--node", NODE]);
    assert.match(wrong.stderr, /E_APP_SETTINGS/);
  });

  test("attack: an app signed by a key the node does not trust, stored anyway (the publisher's trust file swapped), is refused by the agent and nothing of it runs", async () => {
    const evil = appDir(
      work,
      {
        name: "evil",
        version: "1.0.0",
        description: "x",
        services: [{ name: "main", command: "/usr/bin/sleep", args: ["100000"] }],
      },
      {},
    );
    const pub = await cli([
      "app",
      "publish",
      evil,
      "--key",
      join(work, "other.key"),
      "--trusted-keys",
      join(work, "other.pub"),
    ]);
    assert.equal(pub.code, 0, pub.stderr);
    const r = await cli(["app", "install", "evil", "--node", NODE, "--yes"]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(
      "the agent's refusal",
      async () => (await status("evil")).some((x) => x.actual?.state === "failed"),
      60_000,
    );
    const rec = (await status("evil"))[0];
    assert.equal(rec.actual.code, "E_APP_WRONG_KEY");
    assert.equal(rec.actual.version, null, "nothing of it runs");
    assert.ok(!existsSync(join(dir, "apps", "evil", "1.0.0")), "nothing of it was unpacked");
    const removed = await cli(["app", "remove", "evil", "--node", NODE]);
    assert.equal(removed.code, 0, removed.stderr);
  });

  test("removing an app another app depends on is refused", async () => {
    const r = await cli(["app", "remove", "store", "--node", NODE]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /E_APP_DEPENDED_ON/);
    assert.match(r.stderr, /web/);
  });

  test("an upgrade that widens asks again and shows what widens; a failing upgrade rolls back to the running version", async () => {
    const p = await cli([
      "app",
      "publish",
      web("1.1.0", { outbound: true, listen: [{ name: "http", port: webPort }] }),
      "--key",
      key(),
    ]);
    assert.equal(p.code, 0, p.stderr);
    const noYes = await cli(["app", "upgrade", "web", "--node", NODE]);
    assert.equal(noYes.code, 2);
    assert.match(noYes.stderr, /may now do more than before/);
    assert.match(noYes.stderr, /connect/i);
    const yes = await cli(["app", "upgrade", "web", "--node", NODE, "--yes"]);
    assert.equal(yes.code, 0, yes.stderr);
    await waitFor("web 1.1.0", () => running("web", "1.1.0"), 90_000);
    await waitFor(
      "1.1.0 to answer",
      async () =>
        (await fetch(`http://127.0.0.1:${webPort}/`)
          .then((r) => r.text())
          .catch(() => "")) === "1.1.0",
      30_000,
    );

    const broken = web("1.2.0", { outbound: true, listen: [{ name: "http", port: webPort }] }, "process.exit(3);\n");
    assert.equal((await cli(["app", "publish", broken, "--key", key()])).code, 0);
    const up = await cli(["app", "upgrade", "web", "--node", NODE, "--yes"]);
    assert.equal(up.code, 0, up.stderr);
    await waitFor(
      "the failed upgrade",
      async () => (await status("web")).some((r) => r.actual?.state === "failed"),
      120_000,
    );
    const rec = (await status("web"))[0];
    assert.equal(rec.desired.version, "1.2.0");
    assert.match(rec.actual.reason, /rolled back: web 1\.1\.0 runs again/, "it says what runs again");
    assert.equal(rec.actual.version, "1.1.0");
    assert.equal(rec.actual.code, "E_APP_NOT_RUNNING");
    assert.equal(
      await (await fetch(`http://127.0.0.1:${webPort}/`)).text(),
      "1.1.0",
      "the previous version still serves",
    );
  });

  test("a node that was offline converges when it returns: remove --purge while the agent is down", async () => {
    await stopAgentDaemon(agent);
    const r = await cli(["app", "remove", "web", "--node", NODE, "--purge"]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(volume("web", "www")));
    agent = startAgentDaemon(dir);
    await waitFor("web removed and purged", () => !existsSync(volume("web", "www")), 90_000);
    await waitFor(
      "the removal reported",
      async () => (await status("web")).every((x) => x.actual?.state === "removed" || !x.actual),
      60_000,
    );
    await waitFor("store to run again after the restart", () => running("store", "1.0.0"), 60_000);
  });

  test("an app rollout: reviewed, canary then batches, each node's outcome its agent's report", async () => {
    const tool = appDir(
      work,
      {
        name: "tool",
        version: "1.0.0",
        description: "a tool",
        services: [{ name: "main", command: "/usr/bin/sleep", args: ["100000"] }],
      },
      {},
    );
    assert.equal((await cli(["app", "publish", tool, "--key", key()])).code, 0);
    const start = await cli(["rollout", "start", "1.0.0", "--app", "tool", "--selector", "role=apps", "--yes"]);
    assert.equal(start.code, 0, start.stderr);
    const id = JSON.parse(start.stdout).rollout;
    await waitFor(
      "the rollout to complete",
      async () => JSON.parse((await cli(["rollout", "status", id])).stdout).state === "completed",
      120_000,
    );
    const st = JSON.parse((await cli(["rollout", "status", id])).stdout);
    assert.equal(st.nodes[0].rollout_state, "committed");
    assert.equal(st.nodes[0].version, "1.0.0");
    assert.ok(await running("tool", "1.0.0"));
  });

  test("the interactive yes: on a terminal the install goes on only after y", async () => {
    const remove = await cli(["app", "remove", "tool", "--node", NODE]);
    assert.equal(remove.code, 0, remove.stderr);
    await waitFor(
      "tool removed",
      async () => (await status("tool")).every((x) => x.actual?.state === "removed"),
      60_000,
    );
    const cmd = `${join(ROOT, "bin/unibus")} --data-dir ${md!.dataDir} app install tool --node ${NODE}`;
    const answer = (text: string) =>
      new Promise<{ code: number | null; out: string }>((res) => {
        const p = spawn("script", ["-qec", cmd, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
        let out = "";
        p.stdout.on("data", (d) => (out += d));
        p.stderr.on("data", (d) => (out += d));
        p.stdin.write(text);
        p.once("exit", (code) => res({ code, out }));
      });
    const no = await answer("n\n");
    assert.notEqual(no.code, 0, no.out);
    assert.match(no.out, /install\? \[y\/N\]/);
    assert.deepEqual(
      (await status("tool")).filter((x) => x.desired),
      [],
    );
    const yes = await answer("y\n");
    assert.equal(yes.code, 0, yes.out);
    await waitFor("tool to run", () => running("tool", "1.0.0"), 60_000);
    assert.ok(readdirSync(join(dir, "apps")).includes("tool"));
  });
});
