// deploy/cluster/cluster.env as typed config. bash itself sources the file (it is a bash file the
// deploy scripts source too, arrays and quoting included); the file's path is an argument of the
// script, never part of it. The values come back NUL-separated, then zod checks them.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { isIP } from "node:net";
import { z } from "zod";
import { inCidr, parseCidr, type Codes } from "../core/mod.ts";

export const CLUSTER_ENV_VARS = [
  "CLUSTER_NAME",
  "CLUSTER_USER",
  "KV_REPLICAS",
  "NATS_CLIENT_PORT",
  "NATS_ROUTE_PORT",
  "HTTP_PORT",
  "SSH_USER",
  "ROUTE_NETWORK",
  "OVERLAY_CIDR",
  "WG_PORT",
] as const;
type VarName = (typeof CLUSTER_ENV_VARS)[number];

export interface ClusterNode {
  name: string;
  sshHost: string;
  publicIp: string;
  wgIp: string;
}
export interface ClusterEnv {
  clusterName: string;
  clusterUser: string;
  kvReplicas: 1 | 3 | 5;
  natsClientPort: number;
  natsRoutePort: number;
  httpPort: number;
  sshUser: string;
  routeNetwork: "wg" | "public";
  /** The overlay the WG_IPs are in (10.0.0.0/24 when unset) and the mesh's UDP port (51820). */
  overlayCidr: string;
  wgPort: number;
  nodes: ClusterNode[];
}

export type ClusterEnvError = {
  ok: false;
  code: Codes<"E_CLUSTER_ENV_MISSING" | "E_CLUSTER_ENV_PLACEHOLDER" | "E_CLUSTER_ENV_INVALID">;
  message: string;
  placeholders?: string[];
};
export type ClusterEnvResult = { ok: true; env: ClusterEnv } | ClusterEnvError;

/** What bash printed: each variable that is set, and CLUSTER_NODES when it is an array (else null). */
export interface RawClusterEnv {
  vars: Partial<Record<VarName, string>>;
  nodes: string[] | null;
}

const PLACEHOLDER = /<[^<>]+>/;

// Sources "$1" with its output sent to stderr, then prints NAME=value\0 for each variable that is
// set and N=<node line>\0 for each element of CLUSTER_NODES when it is an array.
const SCRIPT = `set -a
source "$1" >&2 || { echo "sourcing $1 failed" >&2; exit 3; }
set +a
for v in ${CLUSTER_ENV_VARS.join(" ")}; do
  if [[ -v $v ]]; then printf '%s=%s\\0' "$v" "\${!v}"; fi
done
if [[ "$(declare -p CLUSTER_NODES 2>/dev/null)" == "declare -a"* ]]; then
  printf 'NODES=array\\0'
  for n in "\${CLUSTER_NODES[@]}"; do printf 'N=%s\\0' "$n"; done
fi`;

/** Reads and checks a cluster.env: placeholders are refused (each named), then every value is validated. */
export function readClusterEnv(file: string): ClusterEnvResult {
  if (!existsSync(file))
    return {
      ok: false,
      code: "E_CLUSTER_ENV_MISSING",
      message: `there is no cluster file at ${file}; copy deploy/cluster/cluster.env and fill it in, or pass --env FILE`,
    };
  // A clean environment: a CLUSTER_NAME exported in the caller's shell must not stand in for one the file lacks.
  const r = spawnSync("bash", ["-c", SCRIPT, "cluster-env", file], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 10_000,
    maxBuffer: 1 << 20,
  });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr.toString().trim().split("\n").pop() ?? `bash exited ${r.status}`);
    return { ok: false, code: "E_CLUSTER_ENV_INVALID", message: `bash could not source ${file}: ${why}` };
  }
  const raw: RawClusterEnv = { vars: {}, nodes: null };
  for (const record of r.stdout.toString().split("\0").slice(0, -1)) {
    const eq = record.indexOf("=");
    const [key, value] = [record.slice(0, eq), record.slice(eq + 1)];
    if (key === "NODES") raw.nodes = [];
    else if (key === "N") raw.nodes?.push(value);
    else if ((CLUSTER_ENV_VARS as readonly string[]).includes(key)) raw.vars[key as VarName] = value;
  }
  return parseClusterEnv(raw, file);
}

/** Every variable or node line that still holds a placeholder, as `NAME=value` / `CLUSTER_NODES[i]=line`. */
export function placeholdersIn(raw: RawClusterEnv): string[] {
  const out: string[] = [];
  for (const v of CLUSTER_ENV_VARS) if (PLACEHOLDER.test(raw.vars[v] ?? "")) out.push(`${v}="${raw.vars[v]}"`);
  (raw.nodes ?? []).forEach((line, i) => PLACEHOLDER.test(line) && out.push(`CLUSTER_NODES[${i}]="${line}"`));
  return out;
}

const port = (v: VarName) =>
  z
    .string({ error: `${v} is not set` })
    .regex(/^\d{1,5}$/, `${v} must be a port number`)
    .transform(Number)
    .refine((n) => n >= 1 && n <= 65535, `${v} must be a port from 1 to 65535`);
const name = (what: string) =>
  z
    .string({ error: `${what} is not set` })
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/,
      `${what} must be 1-63 letters, digits, - or _, starting with a letter or digit`,
    );
const unixUser = (v: VarName) =>
  z
    .string({ error: `${v} is not set` })
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/, `${v} must be a Unix user name (lower-case letters, digits, - and _)`);
const ip = (what: string) => z.string().refine((s) => isIP(s) !== 0, `${what} must be an IPv4 or IPv6 address`);

const NodeLine = z.tuple([
  name("the node's NAME"),
  // Handed to ssh: a host name, address or ssh_config alias, never something ssh reads as an option.
  z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9._:-]*$/, "SSH_HOST must be a host name, address or ssh alias"),
  ip("PUBLIC_IP"),
  ip("WG_IP"),
]);

const Vars = z.object({
  CLUSTER_NAME: name("CLUSTER_NAME"),
  CLUSTER_USER: unixUser("CLUSTER_USER"),
  KV_REPLICAS: z
    .enum(["1", "3", "5"], {
      error: (i) => (i.input === undefined ? "KV_REPLICAS is not set" : "KV_REPLICAS must be 1, 3 or 5"),
    })
    .transform((s) => Number(s) as 1 | 3 | 5),
  NATS_CLIENT_PORT: port("NATS_CLIENT_PORT"),
  NATS_ROUTE_PORT: port("NATS_ROUTE_PORT"),
  HTTP_PORT: port("HTTP_PORT"),
  SSH_USER: unixUser("SSH_USER"),
  ROUTE_NETWORK: z.enum(["wg", "public"], {
    error: (i) => (i.input === undefined ? "ROUTE_NETWORK is not set" : "ROUTE_NETWORK must be wg or public"),
  }),
  OVERLAY_CIDR: z
    .string()
    .refine((c) => parseCidr(c) !== null, "OVERLAY_CIDR must be an IPv4 CIDR from /8 to /30")
    .default("10.0.0.0/24"),
  WG_PORT: port("WG_PORT").default(51_820),
});

/** The checks on what bash printed (pure: the unit tests call it directly). */
export function parseClusterEnv(raw: RawClusterEnv, file = "cluster.env"): ClusterEnvResult {
  const placeholders = placeholdersIn(raw);
  if (placeholders.length) {
    return {
      ok: false,
      code: "E_CLUSTER_ENV_PLACEHOLDER",
      placeholders,
      message: `${file} still has ${placeholders.length} placeholder(s) to fill in: ${placeholders.join(", ")}`,
    };
  }
  const problems: string[] = [];
  const vars = Vars.safeParse(raw.vars);
  if (!vars.success) problems.push(...vars.error.issues.map((i) => i.message));
  const nodes: ClusterNode[] = [];
  if (raw.nodes === null)
    problems.push(`CLUSTER_NODES must be a bash array: CLUSTER_NODES=( "NAME SSH_HOST PUBLIC_IP WG_IP" … )`);
  else if (raw.nodes.length === 0) problems.push("CLUSTER_NODES lists no node");
  (raw.nodes ?? []).forEach((line, i) => {
    const fields = line.trim().split(/\s+/).filter(Boolean);
    if (fields.length !== 4)
      return void problems.push(
        `CLUSTER_NODES[${i}] has ${fields.length} field(s), not the 4 of "NAME SSH_HOST PUBLIC_IP WG_IP"`,
      );
    const n = NodeLine.safeParse(fields);
    if (!n.success) return void problems.push(...n.error.issues.map((e) => `CLUSTER_NODES[${i}]: ${e.message}`));
    const [nodeName, sshHost, publicIp, wgIp] = n.data;
    nodes.push({ name: nodeName, sshHost, publicIp, wgIp });
  });
  for (const [field, label] of [
    ["name", "name"],
    ["publicIp", "PUBLIC_IP"],
    ["wgIp", "WG_IP"],
  ] as const) {
    const seen = new Set<string>();
    for (const n of nodes) {
      if (seen.has(n[field])) problems.push(`CLUSTER_NODES lists the ${label} ${n[field]} twice`);
      seen.add(n[field]);
    }
  }
  if (vars.success) {
    const v = vars.data;
    const ports = [
      ["NATS_CLIENT_PORT", v.NATS_CLIENT_PORT],
      ["NATS_ROUTE_PORT", v.NATS_ROUTE_PORT],
      ["HTTP_PORT", v.HTTP_PORT],
    ] as const;
    for (let i = 0; i < ports.length; i++)
      for (let j = i + 1; j < ports.length; j++) {
        if (ports[i]![1] === ports[j]![1])
          problems.push(`${ports[i]![0]} and ${ports[j]![0]} are both ${ports[i]![1]}`);
      }
    const overlay = parseCidr(v.OVERLAY_CIDR);
    if (v.ROUTE_NETWORK === "wg" && overlay)
      for (const n of nodes)
        if (!inCidr(overlay, n.wgIp))
          problems.push(`${n.name}'s WG_IP ${n.wgIp} is not a host address of OVERLAY_CIDR ${v.OVERLAY_CIDR}`);
    if (raw.nodes && raw.nodes.length > 0 && v.KV_REPLICAS > raw.nodes.length)
      problems.push(`KV_REPLICAS is ${v.KV_REPLICAS} but CLUSTER_NODES lists only ${raw.nodes.length} node(s)`);
  }
  if (problems.length || !vars.success)
    return { ok: false, code: "E_CLUSTER_ENV_INVALID", message: `${file} is not valid: ${problems.join("; ")}` };
  const v = vars.data;
  return {
    ok: true,
    env: {
      clusterName: v.CLUSTER_NAME,
      clusterUser: v.CLUSTER_USER,
      kvReplicas: v.KV_REPLICAS,
      natsClientPort: v.NATS_CLIENT_PORT,
      natsRoutePort: v.NATS_ROUTE_PORT,
      httpPort: v.HTTP_PORT,
      sshUser: v.SSH_USER,
      routeNetwork: v.ROUTE_NETWORK,
      overlayCidr: v.OVERLAY_CIDR,
      wgPort: v.WG_PORT,
      nodes,
    },
  };
}

/** The address other nodes and `monitor report` reach a node at: its WG_IP when ROUTE_NETWORK=wg, else its PUBLIC_IP. */
export function nodeAddress(env: Pick<ClusterEnv, "routeNetwork">, node: ClusterNode): string {
  return env.routeNetwork === "wg" ? node.wgIp : node.publicIp;
}

/** http://ADDR:HTTP_PORT (IPv6 in brackets). */
export function healthzBase(env: Pick<ClusterEnv, "routeNetwork" | "httpPort">, node: ClusterNode): string {
  const a = nodeAddress(env, node);
  return `http://${isIP(a) === 6 ? `[${a}]` : a}:${env.httpPort}`;
}
