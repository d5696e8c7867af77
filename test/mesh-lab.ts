// A WireGuard mesh on network-namespace hosts, for test/mesh.test.ts and bench/mesh.ts: membershipd
// on host "cp", each node's agent on its own host with `run --mesh` (wireguard-go: this kernel has
// no WireGuard module). Interfaces are read through wireguard-go's control sockets (one directory
// for every namespace), so a poll of fifty of them spawns no process.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { ROOT, startMembershipd, tempDir, type CliResult, type MembershipdHandle } from "./harness.ts";
import { createLab, netnsUnavailable, type NetnsLab } from "./netns.ts";
import { parseWgKeyFile, wgPublicKeyOf } from "../services/core/mod.ts";

/** Why a mesh lab cannot run here, or null. */
export function meshLabUnavailable(): string | null {
  return (
    netnsUnavailable() ??
    (spawnSync("wireguard-go", ["--version"]).error ? "wireguard-go is not installed (scripts/install-deps.sh)" : null)
  );
}

export interface WgPeerState {
  /** Base64, as `wg` prints it. */
  publicKey: string;
  /** Unix seconds of the last handshake; 0 before the first. */
  lastHandshake: number;
}

export interface WgState {
  peers: WgPeerState[];
}

const hexToB64 = (hex: string) => Buffer.from(hex, "hex").toString("base64");
const b64ToHex = (b64: string) => Buffer.from(b64, "base64").toString("hex");

/** One request on wireguard-go's control socket for `iface`: its answer, null when none runs. */
function uapi(iface: string, request: string): Promise<string | null> {
  return new Promise((resolve) => {
    const sock = connect(`/var/run/wireguard/${iface}.sock`);
    let text = "";
    sock.setTimeout(2000, () => sock.destroy());
    sock.on("error", () => resolve(null));
    sock.on("close", () => resolve(/errno=0\n/.test(text) ? text : null));
    sock.on("data", (d) => {
      text += d;
      if (text.endsWith("\n\n")) sock.end();
    });
    sock.write(request);
  });
}

/** wireguard-go's state of `iface` (its UAPI `get`); null when no such interface runs. */
export async function readWg(iface: string): Promise<WgState | null> {
  const text = await uapi(iface, "get=1\n\n");
  return text === null ? null : parseUapi(text);
}

/** `wg set` without a process: peers removed, or added with an endpoint, allowed IPs and a keepalive (25 s unless given; 0: none). */
export async function setWgPeers(
  iface: string,
  peers: { publicKey: string; remove?: true; endpoint?: string; allowedIp?: string; keepalive?: number }[],
): Promise<void> {
  const lines = ["set=1"];
  for (const p of peers) {
    lines.push(`public_key=${b64ToHex(p.publicKey)}`);
    if (p.remove) lines.push("remove=true");
    else {
      if (p.endpoint) lines.push(`endpoint=${p.endpoint}`);
      lines.push("replace_allowed_ips=true", `allowed_ip=${p.allowedIp}`);
      lines.push(`persistent_keepalive_interval=${p.keepalive ?? 25}`);
    }
  }
  if ((await uapi(iface, `${lines.join("\n")}\n\n`)) === null) throw new Error(`wireguard-go ${iface} refused a set`);
}

function parseUapi(text: string): WgState {
  const state: WgState = { peers: [] };
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    const [k, v] = [line.slice(0, eq), line.slice(eq + 1)];
    if (k === "public_key") state.peers.push({ publicKey: hexToB64(v), lastHandshake: 0 });
    else if (k === "last_handshake_time_sec" && state.peers.length) state.peers.at(-1)!.lastHandshake = Number(v);
  }
  return state;
}

export interface MeshLab {
  lab: NetnsLab;
  md: MembershipdHandle;
  iface(node: string): string;
  /** bin/unibus --json on the cp host, as the bootstrap admin. */
  cli(args: string[]): Promise<CliResult>;
  /** Invites and joins `node` with its endpoint; its overlay address. */
  enroll(node: string): Promise<string>;
  startAgent(node: string, extra?: string[]): void;
  /** bin/unibus-agent --json with the node's data dir, on its host (join, wg update). */
  agentCli(node: string, args: string[], input?: string): Promise<CliResult>;
  agentOutput(node: string): string;
  /** The node's WireGuard public key, from its agent's wg.key. */
  wgKey(node: string): string;
  /** Every process of a node's host killed: its agent and its wireguard-go. */
  killHost(node: string): void;
  destroy(): Promise<void>;
}

/** `routed`: the hosts reach each other through a router host (test/netns.ts says why a large lab needs it). */
export async function startMeshLab(nodes: string[], o: { routed?: boolean } = {}): Promise<MeshLab> {
  const dir = tempDir("unibus-mesh-");
  const lab = createLab(["cp", ...nodes], o.routed ? { routed: true } : {});
  const agents = new Map<string, { proc: ChildProcess; out: string }>();
  const host = (n: string) => lab.hosts.find((h) => h.name === n)!;
  const iface = (n: string) => `${lab.prefix.replace("-", "")}${n}`;
  const cp = host("cp");
  let md: MembershipdHandle;
  try {
    md = await startMembershipd({
      wrap: ["ip", "netns", "exec", cp.ns],
      natsPort: 4250,
      httpPort: 8470,
      dataDir: join(dir, "md"),
      args: ["--nats-host", "0.0.0.0", "--advertise", `nats://${cp.publicIp}:4250`],
    });
  } catch (err) {
    lab.destroy();
    throw err;
  }
  const cli = (args: string[]) =>
    lab.exec("cp", [join(ROOT, "bin/unibus"), "--data-dir", md.dataDir, "--json", ...args]);
  const agentBin = join(ROOT, "bin/unibus-agent");
  return {
    lab,
    md,
    iface,
    cli,
    agentCli: (n, args, input) =>
      lab.exec(n, [agentBin, "--data-dir", join(dir, n), "--json", ...args], input === undefined ? {} : { input }),
    async enroll(n) {
      const invite = await cli(["node", "invite", "--note", `mesh lab ${n}`]);
      if (invite.code !== 0) throw new Error(`node invite: ${invite.stderr}`);
      const joined = await lab.exec(
        n,
        [
          agentBin,
          "--data-dir",
          join(dir, n),
          "--name",
          n,
          "--json",
          "--wg-endpoint",
          `${host(n).publicIp}:51820`,
        ].concat(["join", "--token", "-"]),
        { input: JSON.parse(invite.stdout).token },
      );
      if (joined.code !== 0) throw new Error(`join ${n}: ${joined.stdout}${joined.stderr}`);
      return JSON.parse(joined.stdout).result.address as string;
    },
    startAgent(n, extra = []) {
      const argv = ["netns", "exec", host(n).ns, agentBin, "--data-dir", join(dir, n), "run", "--mesh"];
      const proc = spawn("ip", argv.concat(["--wg-interface", iface(n)], extra), { stdio: ["ignore", "pipe", "pipe"] });
      const entry = { proc, out: "" };
      proc.stdout!.on("data", (d) => (entry.out += d));
      proc.stderr!.on("data", (d) => (entry.out += d));
      agents.set(n, entry);
    },
    agentOutput: (n) => agents.get(n)?.out ?? "",
    wgKey(n) {
      const raw = parseWgKeyFile(readFileSync(join(dir, n, "wg.key")))!;
      try {
        return wgPublicKeyOf(raw);
      } finally {
        raw.fill(0);
      }
    },
    killHost(n) {
      const pids = spawnSync("ip", ["netns", "pids", host(n).ns], { encoding: "utf8" }).stdout.split(/\s+/);
      for (const pid of pids.filter(Boolean)) spawnSync("kill", ["-9", pid]);
    },
    async destroy() {
      for (const a of agents.values()) a.proc.kill("SIGKILL");
      await md.kill9();
      if (process.env.UNIBUS_KEEP_LAB) return void process.stderr.write(`lab kept: ${lab.prefix}* in ${dir}\n`);
      lab.destroy(); // wireguard-go's control sockets too
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
