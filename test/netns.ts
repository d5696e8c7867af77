// Several hosts on one machine for tests that must cross a network: one network namespace per
// host, each with a veth into a bridge that has no address of its own, so every address lives
// only inside the namespaces this harness made (and took down again). Two subnets on each link
// stand in for a node's public and WireGuard addresses.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ROOT, type CliResult } from "./harness.ts";

export interface NetnsHost {
  name: string;
  ns: string;
  publicIp: string;
  wgIp: string;
}

export interface NetnsLab {
  prefix: string;
  hosts: NetnsHost[];
  /** Runs a command inside a host's namespace to completion. */
  exec(
    host: string,
    cmd: string[],
    opts?: { input?: string; env?: Record<string, string>; timeoutMs?: number },
  ): Promise<CliResult>;
  /** Kills every process left in the namespaces and removes them and the bridge. */
  destroy(): void;
}

function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** Why network namespaces cannot be made here, or null when they can. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "network namespaces need root";
  const probe = `ubprobe${randomBytes(3).toString("hex")}`;
  const r = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" });
  if (r.error || r.status !== 0) return `ip netns add failed: ${(r.stderr || r.error?.message || "").trim()}`;
  spawnSync("ip", ["netns", "del", probe]);
  return null;
}

export interface LabOptions {
  /**
   * false: the wg addresses are left off eth0: a real mesh (deploy-cluster.sh with
   * ROUTE_NETWORK=wg) puts them on its WireGuard interfaces.
   */
  wgOnEth0?: boolean;
  /**
   * Every host reaches the others through one router host (its own namespace, <prefix>rt, at
   * 10.231.<net>.1): each host's public address is a /32 with the router as gateway, as hosts on
   * different networks are. The kernel's ARP table is one for all namespaces (1,024 entries at
   * most by default); on one flat link a full mesh of N hosts needs N² of them (50 hosts: 2,500,
   * "neighbor table overflow"), through a router 2N. No wg addresses on eth0 then.
   */
  routed?: boolean;
}

const ROUTER = "rt";

/** A namespace `ns` whose eth0 (with `addresses`) is a veth, `outside`, into `bridge`. */
function addHost(ns: string, outside: string, bridge: string, addresses: string[]): void {
  ip(["netns", "add", ns]);
  ip(["link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  ip(["link", "set", outside, "master", bridge, "up"]);
  ip(["-n", ns, "link", "set", "lo", "up"]);
  for (const a of addresses) ip(["-n", ns, "addr", "add", a, "dev", "eth0"]);
  ip(["-n", ns, "link", "set", "eth0", "up"]);
}

/** The router host of a routed lab: forwards between the hosts, and sends no redirects (they would put the hosts back on one link). */
function addRouter(ns: string, outside: string, bridge: string, address: string): void {
  addHost(ns, outside, bridge, [address]);
  for (const setting of [
    "net.ipv4.ip_forward=1",
    "net.ipv4.conf.all.send_redirects=0",
    "net.ipv4.conf.default.send_redirects=0",
    "net.ipv4.conf.eth0.send_redirects=0",
  ])
    execFileSync("ip", ["netns", "exec", ns, "sysctl", "-q", "-w", setting]);
}

/** `names` hosts, 10.231.<net>.x ("public") and 10.232.<net>.x ("wg") on one bridge (LabOptions). */
export function createLab(names: string[], o: LabOptions = {}): NetnsLab {
  const id = randomBytes(2).toString("hex");
  const prefix = `ub${id}-`;
  const bridge = `ubbr${id}`;
  const net = 1 + (parseInt(id, 16) % 250);
  const hosts: NetnsHost[] = names.map((name, i) => ({
    name,
    ns: `${prefix}${name}`,
    publicIp: `10.231.${net}.${10 + i}`,
    wgIp: `10.232.${net}.${10 + i}`,
  }));
  const lab: NetnsLab = {
    prefix,
    hosts,
    exec: (host, cmd, opts = {}) =>
      new Promise((resolve) => {
        const proc = spawn("ip", ["netns", "exec", `${prefix}${host}`, ...cmd], {
          cwd: ROOT,
          env: { ...process.env, ...opts.env },
          stdio: ["pipe", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
        proc.stdout.on("data", (d) => (stdout += d));
        proc.stderr.on("data", (d) => (stderr += d));
        // A command that exits without reading its input (ping) closes the pipe first: no EPIPE then.
        proc.stdin.on("error", () => {});
        proc.stdin.end(opts.input ?? "");
        proc.once("exit", (code) => {
          clearTimeout(timer);
          resolve({ code: code ?? -1, stdout, stderr });
        });
      }),
    destroy() {
      for (const h of hosts) {
        const pids = spawnSync("ip", ["netns", "pids", h.ns], { encoding: "utf8" }).stdout.split(/\s+/).filter(Boolean);
        for (const pid of pids) spawnSync("kill", ["-9", pid]);
      }
      for (const h of hosts) spawnSync("ip", ["netns", "del", h.ns]);
      if (o.routed) spawnSync("ip", ["netns", "del", `${prefix}${ROUTER}`]);
      spawnSync("ip", ["link", "del", bridge]);
      // wireguard-go's sockets outlive a kill -9. The mesh interfaces of a lab are named after its id
      // (deploy-cluster.sh: <prefix>w<i>; test/mesh-lab.ts: ub<id><node>).
      const sockets = "/var/run/wireguard";
      if (existsSync(sockets))
        for (const f of readdirSync(sockets)) if (f.startsWith(`ub${id}`)) rmSync(join(sockets, f), { force: true });
    },
  };
  try {
    ip(["link", "add", bridge, "type", "bridge"]);
    ip(["link", "set", bridge, "up"]);
    hosts.forEach((h, i) => {
      const wgOnEth0 = o.wgOnEth0 !== false && !o.routed;
      addHost(h.ns, `ubv${id}${i}`, bridge, [
        `${h.publicIp}/${o.routed ? 32 : 24}`,
        ...(wgOnEth0 ? [`${h.wgIp}/24`] : []),
      ]);
      if (o.routed) {
        ip(["-n", h.ns, "route", "add", `10.231.${net}.1/32`, "dev", "eth0"]);
        ip(["-n", h.ns, "route", "add", `10.231.${net}.0/24`, "via", `10.231.${net}.1`]);
      }
    });
    if (o.routed) addRouter(`${prefix}${ROUTER}`, `ubv${id}r`, bridge, `10.231.${net}.1/24`);
  } catch (err) {
    lab.destroy();
    throw err;
  }
  return lab;
}
