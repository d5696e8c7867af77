// An app's sandbox, seen from inside real bwrap sandboxes run by the supervisor as root: the system
// tree only (system_only), writes only to its writable paths, no network without it, its TCP ports
// held by Landlock (unibus-netrules, compiled here from its source) and seccomp, and no way into
// another app's data. Each service is a python3 one-liner printing `key=value` facts: `ok` or the
// errno's name.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { compileNative, NATIVE } from "../../../scripts/build.ts";
import { landlockNetSupported } from "./landlock/mod.ts";
import { probeSandbox } from "./probe.ts";
import { DEFAULT_TOOLS, type Tools } from "./sandbox.ts";
import { assemble, RET } from "./seccomp.ts";
import { Fixture, Recorder, shService, waitFor } from "./testing.ts";
import { ServiceConfig, type ServiceConfigInput } from "../../../schemas/mod.ts";

const PYTHON = "/usr/bin/python3";
const root = process.getuid?.() === 0;
const probe = root ? probeSandbox({ root, tools: DEFAULT_TOOLS }) : null;
const why = !root
  ? "needs root (own UIDs per app)"
  : !probe?.available
    ? `no usable bwrap: ${probe && !probe.available ? probe.reason : ""}`
    : !existsSync(PYTHON)
      ? `no ${PYTHON} to act inside the sandbox`
      : null;

const fixture = new Fixture();
after(() => fixture.cleanup());

/** Prints `key=ok` or `key=<errno name>` for each attempt; `attempt` is defined for the script. */
const PRELUDE = [
  "import errno, os, socket, sys",
  "def attempt(key, f):",
  "    try:",
  "        f(); print(f'{key}=ok', flush=True)",
  "    except OSError as e:",
  "        print(f'{key}={errno.errorcode.get(e.errno, e.errno)}', flush=True)",
].join("\n");

function pyService(name: string, script: string, args: string[], more: Partial<ServiceConfigInput>): ServiceConfig {
  return ServiceConfig.parse({
    ...shService(name, "", more),
    command: PYTHON,
    args: ["-c", `${PRELUDE}\n${script}`, ...args],
  });
}

async function runToEnd(rec: Recorder, configs: ServiceConfig[], tools: Partial<Tools> = {}, roots?: string[]) {
  const sup = fixture.supervisor(configs, {
    ...rec.options,
    tools,
    ...(roots ? { writableRoots: { serviceData: null, permitted: roots } } : {}),
  });
  await sup.startAll();
  await waitFor("every service to finish", () => rec.of("ServiceStopped").length === configs.length, 20_000);
}

/** A TCP listener of the test process on 127.0.0.1 (the host's loopback), counting connections. */
async function hostListener(): Promise<{ server: Server; port: number; accepted: () => number }> {
  let n = 0;
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    n++;
    sockets.push(s);
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  assert.ok(address && typeof address === "object");
  return { server, port: address.port, accepted: () => n };
}

/** One connection from the host, closed once made. */
function connectTo(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => {
      s.destroy();
      resolve();
    });
    s.once("error", reject);
  });
}

/** A port nobody listens on right now (the kernel's pick for a socket closed again). */
async function freePort(): Promise<number> {
  const { server, port } = await hostListener();
  await new Promise((r) => server.close(r));
  return port;
}

describe("an app's sandbox", { skip: why ?? false, timeout: 120_000 }, () => {
  test("system_only: only the system tree, its code read-only and its writable path; it writes nowhere else", async () => {
    const top = fixture.tempDir();
    chmodSync(top, 0o755);
    const own = join(top, "own");
    const code = join(top, "code");
    const other = join(top, "other");
    mkdirSync(code);
    writeFileSync(join(code, "main.py"), "print('code=ran')\n");
    mkdirSync(other, { mode: 0o777 });
    chmodSync(other, 0o777);
    const script = `
exec(open(sys.argv[1] + '/main.py').read())
attempt('write_own', lambda: open(sys.argv[2] + '/file', 'w').write('x'))
attempt('write_code', lambda: open(sys.argv[1] + '/new', 'w').write('x'))
attempt('write_other', lambda: open(sys.argv[3] + '/file', 'w').write('x'))
attempt('write_root', lambda: open('/escape', 'w').write('x'))
attempt('write_etc', lambda: open('/etc/escape', 'w').write('x'))
print('sees_other=' + str(os.path.exists(sys.argv[3])))
print('sees=' + ','.join(p for p in ['/root', '/home', '/var', '/srv', '/opt', '/work'] if os.path.exists(p)))
`;
    const rec = new Recorder();
    await runToEnd(rec, [
      pyService("app-files", script, [code, own, other], {
        writable: [own],
        sandbox: { system_only: true, read_only: [code] },
        restart: { policy: "never" },
      }),
    ]);
    assert.deepEqual(rec.out("app-files", "stderr"), []);
    assert.deepEqual(rec.facts("app-files"), {
      code: "ran",
      write_own: "ok",
      write_code: "EROFS",
      // Not there at all (the default profile's read-only root would answer EROFS).
      write_other: "ENOENT",
      write_root: "EROFS",
      write_etc: "EROFS",
      sees_other: "False",
      sees: "",
    });
    assert.equal(existsSync(join(other, "file")), false);
    assert.equal(existsSync(join(own, "file")), true);
  });

  test("network false: a listener on the host's loopback is out of reach", async () => {
    const host = await hostListener();
    after(() => host.server.close());
    const rec = new Recorder();
    await runToEnd(rec, [
      pyService(
        "app-offline",
        "attempt('connect', lambda: socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5))",
        [String(host.port)],
        { sandbox: { system_only: true }, restart: { policy: "never" } },
      ),
    ]);
    assert.deepEqual(rec.facts("app-offline"), { connect: "ECONNREFUSED" });
    assert.equal(host.accepted(), 0);
  });

  describe("ports (Landlock)", () => {
    let tools: Partial<Tools> = {};
    let noLandlock: string | false = false;
    before(() => {
      // The helper from its source, as scripts/build.ts compiles it (not a dist/ that may be stale).
      const dir = fixture.tempDir();
      chmodSync(dir, 0o755);
      const out = join(dir, "unibus-netrules");
      compileNative(join(import.meta.dirname, "../../.."), NATIVE["unibus-netrules"]!, out);
      tools = { netrules: out };
      noLandlock = landlockNetSupported(out) ? false : "the kernel has no Landlock network rules (ABI 4)";
    });

    test("the helper refuses rather than run a command unconfined: no Landlock (ENOSYS), bad options, no command", (t) => {
      if (noLandlock) return t.skip(noLandlock);
      const netrules = tools.netrules!;
      const marker = join(fixture.tempDir(), "ran");
      const touch = ["--", "/usr/bin/touch", marker];
      // An old kernel, as seccomp makes it look: landlock_create_ruleset answers ENOSYS.
      const oldKernel = assemble([
        { op: "ld", offset: 0 },
        { op: "jeq", k: 444, yes: "enosys", no: null },
        { op: "ret", k: RET.ALLOW },
        { op: "label", name: "enosys" },
        { op: "ret", k: RET.ERRNO | 38 },
      ]);
      const underOldKernel = (args: string[]) =>
        spawnSync(DEFAULT_TOOLS.bwrap, ["--ro-bind", "/", "/", "--seccomp", "0", "--", netrules, ...args], {
          input: oldKernel,
          encoding: "utf8",
        });
      const probed = underOldKernel(["--probe"]);
      assert.deepEqual([probed.status, probed.stdout], [1, "0\n"]);
      const old = underOldKernel(["--bind-tcp", "8080", ...touch]);
      assert.equal(old.status, 126);
      assert.equal(
        old.stderr,
        "unibus-netrules: the kernel has no Landlock network rules (ABI 4, Linux 6.7): not running unconfined\n",
      );
      const run = (args: string[]) => spawnSync(netrules, args, { encoding: "utf8" });
      for (const bad of [
        ["--bind-tcp", "0"],
        ["--bind-tcp", "65536"],
        ["--bind-tcp", "80x"],
        ["--connect"],
        ["--bind-tcp"],
      ]) {
        const r = run([...bad, ...touch]);
        assert.equal(r.status, 126, bad.join(" "));
        assert.match(r.stderr, /^unibus-netrules: usage: [^\n]*\n$/, bad.join(" "));
      }
      assert.deepEqual([run(["--no-connect", "--"]).status, run(["--no-connect"]).status], [126, 126], "no command");
      assert.equal(existsSync(marker), false, "the command never ran");
      assert.equal(run(["--", "/nonexistent"]).status, 127, "a command that cannot be executed");
      assert.equal(run(["--bind-tcp", "8080", ...touch]).status, 0);
      assert.equal(existsSync(marker), true, "with Landlock it runs");
    });

    test("listen [P], no outbound: serves on P; another port, a connect, UDP and MPTCP are refused", async (t) => {
      if (noLandlock) return t.skip(noLandlock);
      const host = await hostListener();
      after(() => host.server.close());
      const [p, q] = [await freePort(), await freePort()];
      const script = `
P, Q, H = (int(a) for a in sys.argv[1:4])
def bind(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', port)); s.listen()
attempt('bind_q', lambda: bind(Q))
attempt('connect_host', lambda: socket.create_connection(('127.0.0.1', H), timeout=5))
attempt('fast_open', lambda: socket.socket().sendto(b'x', socket.MSG_FASTOPEN, ('127.0.0.1', H)))
attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
attempt('mptcp', lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', P)); s.listen(); s.settimeout(15)
print('listen_p=ok', flush=True)
attempt('accept', lambda: s.accept())
`;
      const rec = new Recorder();
      const config = pyService("app-server", script, [String(p), String(q), String(host.port)], {
        sandbox: { system_only: true, network: true, ports: { listen: [p], outbound: false } },
        restart: { policy: "never" },
      });
      const sup = fixture.supervisor([config], { ...rec.options, tools });
      await sup.startAll();
      await waitFor("the service to listen on its port", () => rec.facts("app-server").listen_p === "ok", 15_000);
      await connectTo(p);
      await waitFor("the service to finish", () => rec.of("ServiceStopped").length === 1, 15_000);
      assert.deepEqual(rec.out("app-server", "stderr"), []);
      assert.deepEqual(rec.facts("app-server"), {
        bind_q: "EACCES",
        connect_host: "EACCES",
        fast_open: "EACCES",
        udp: "EPERM",
        mptcp: "EPERM",
        listen_p: "ok",
        accept: "ok",
      });
      assert.equal(host.accepted(), 0, "nothing reached the host's listener");
    });

    test("no listen port, outbound: connects out, but listen() and bind are refused; UDP works", async (t) => {
      if (noLandlock) return t.skip(noLandlock);
      const host = await hostListener();
      after(() => host.server.close());
      const q = await freePort();
      const script = `
Q, H = (int(a) for a in sys.argv[1:3])
attempt('connect_host', lambda: socket.create_connection(('127.0.0.1', H), timeout=5))
attempt('listen', lambda: socket.socket().listen())
attempt('bind_q', lambda: socket.socket().bind(('127.0.0.1', Q)))
attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
`;
      const rec = new Recorder();
      await runToEnd(
        rec,
        [
          pyService("app-client", script, [String(q), String(host.port)], {
            sandbox: { system_only: true, network: true, ports: { listen: [], outbound: true } },
            restart: { policy: "never" },
          }),
        ],
        tools,
      );
      assert.deepEqual(rec.facts("app-client"), { connect_host: "ok", listen: "EPERM", bind_q: "EACCES", udp: "ok" });
      await waitFor("the host's listener to see the connection", () => host.accepted() === 1);
    });
  });

  test("another app's data: absent under system_only, and unreadable by file permissions under the default profile", async () => {
    // Outside /tmp, which is private in every sandbox: the default profile shows this path read-only.
    const top = mkdtempSync("/var/tmp/unibus-app-sandbox-");
    after(() => rmSync(top, { recursive: true, force: true }));
    chmodSync(top, 0o755);
    const [uidA, uidB] = [4_301, 4_302];
    const volume = join(top, "b-volume");
    mkdirSync(volume, { mode: 0o700 });
    writeFileSync(join(volume, "secret"), "b's data");
    chownSync(volume, uidB, uidB);
    chownSync(join(volume, "secret"), uidB, uidB);
    chmodSync(volume, 0o700);
    const script = `
V = sys.argv[1]
print('sees=' + str(os.path.exists(V)))
attempt('list', lambda: os.listdir(V))
attempt('read', lambda: open(V + '/secret').read())
`;
    const never = { policy: "never" as const };
    const rec = new Recorder();
    await runToEnd(
      rec,
      [
        pyService("app-a", script, [volume], { sandbox: { uid: uidA, system_only: true }, restart: never }),
        pyService("app-a-default", script, [volume], { sandbox: { uid: 4_303 }, restart: never }),
        // B itself reads it, its volume bound writable: the file is there to be read.
        pyService("app-b", script, [volume], {
          writable: [volume],
          sandbox: { uid: uidB, system_only: true },
          restart: never,
        }),
      ],
      {},
      [top],
    );
    assert.deepEqual(rec.facts("app-a"), { sees: "False", list: "ENOENT", read: "ENOENT" });
    assert.deepEqual(rec.facts("app-a-default"), { sees: "True", list: "EACCES", read: "EACCES" });
    assert.deepEqual(rec.facts("app-b"), { sees: "True", list: "ok", read: "ok" });
  });
});
