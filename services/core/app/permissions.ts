// The permission review: what an app may do, in plain words an operator reads before saying yes,
// and for an upgrade exactly what the new version may do that the old one could not. Pure.
import type { AppLimits, AppManifest } from "../../../schemas/mod.ts";

const list = (xs: readonly string[]) => xs.join(", ");
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** 268435456 → "256 MiB": limits as an operator writes them. */
export function formatBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1 && v % 1024 === 0) {
    v /= 1024;
    u++;
  }
  return `${v} ${units[u]}`;
}

/** Each limit: what it limits, and a value in its unit. */
const LIMIT_WORDS: Record<keyof AppLimits, [string, (n: number) => string]> = {
  memory_bytes: ["memory", formatBytes],
  cpu_percent: ["CPU", (n) => `${n}% of one core`],
  processes: ["processes", String],
  open_files: ["open files", (n) => `${n} per process`],
};
const limitText = (k: keyof AppLimits, n: number) => `${LIMIT_WORDS[k][0]} ${LIMIT_WORDS[k][1](n)}`;
const LIMITS = Object.keys(LIMIT_WORDS) as (keyof AppLimits)[];

const port = (p: { name: string; port: number }) => `${p.port} (${p.name})`;

function networkLines(m: AppManifest): string[] {
  const { outbound, listen } = m.permissions.network;
  if (!outbound && listen.length === 0) return ["network: none (its own network namespace with only loopback)"];
  const out: string[] = [];
  out.push(outbound ? "network: may connect out to other hosts (TCP and UDP)" : "network: may not connect out");
  if (listen.length > 0) out.push(`listens on TCP ${list(listen.map(port))} and no other port`);
  return out;
}

/** One line per thing the app may do, in the order an operator weighs them, signer last. */
export function describePermissions(m: AppManifest, signer: { keyId: string }): string[] {
  const p = m.permissions;
  const vols = p.volumes.map((v) => (v.description ? `${v.name} (${v.description})` : v.name));
  const limits = LIMITS.filter((k) => m.limits[k] !== undefined).map((k) => limitText(k, m.limits[k]!));
  const deps = Object.entries(m.dependencies).map(([a, r]) => `${a} ${r}`);
  return [
    ...networkLines(m),
    vols.length > 0 ? `writes only its volumes ${list(vols)}` : "writes nothing that persists (no volumes)",
    ...(p.read_only.length > 0 ? [`reads host paths ${list(p.read_only)} besides the system tree`] : []),
    ...(p.devices.length > 0 ? [`uses devices ${list(p.devices)}`] : []),
    ...(p.data_key ? ["gets the node's vault data key (starts only once the vault is unlocked)"] : []),
    limits.length > 0 ? `limits: ${list(limits)}` : "limits: none of its own",
    `runs ${plural(m.services.length, "service")}: ${list(m.services.map((s) => `${m.name}-${s.name}`))}`,
    ...(deps.length > 0 ? [`needs apps ${list(deps)} on the same node`] : []),
    `signed by key ${signer.keyId}`,
  ];
}

/** Whether reading `path` was already allowed by one of `granted` (the same path or one above it). */
const coveredBy = (path: string, granted: readonly string[]) =>
  granted.some((g) => path === g || path.startsWith(g.endsWith("/") ? g : `${g}/`));

function limitWidening(from: AppLimits, to: AppLimits): string[] {
  const out: string[] = [];
  for (const k of LIMITS) {
    const [a, b] = [from[k], to[k]];
    if (a === undefined) continue;
    const [what, value] = LIMIT_WORDS[k];
    if (b === undefined) out.push(`its ${what} limit (${value(a)}) is removed`);
    else if (b > a) out.push(`its ${what} limit rises from ${value(a)} to ${value(b)}`);
  }
  return out;
}

/** Exactly what `to` may do that `from` could not, one line each; [] when nothing widens. */
export function permissionWidening(from: AppManifest, to: AppManifest): string[] {
  const [a, b] = [from.permissions, to.permissions];
  const out: string[] = [];
  if (!a.network.outbound && b.network.outbound) out.push("may now connect out to other hosts (TCP and UDP)");
  const oldPorts = new Set(a.network.listen.map((p) => p.port));
  const ports = b.network.listen.filter((p) => !oldPorts.has(p.port));
  if (ports.length > 0)
    out.push(`listens on new TCP ${ports.length === 1 ? "port" : "ports"} ${list(ports.map(port))}`);
  const oldVols = new Set(a.volumes.map((v) => v.name));
  const vols = b.volumes.filter((v) => !oldVols.has(v.name)).map((v) => v.name);
  if (vols.length > 0) out.push(`writes new ${vols.length === 1 ? "volume" : "volumes"} ${list(vols)}`);
  const reads = b.read_only.filter((p) => !coveredBy(p, a.read_only));
  if (reads.length > 0) out.push(`reads new host ${reads.length === 1 ? "path" : "paths"} ${list(reads)}`);
  const devices = b.devices.filter((d) => !a.devices.includes(d));
  if (devices.length > 0) out.push(`uses new ${devices.length === 1 ? "device" : "devices"} ${list(devices)}`);
  if (!a.data_key && b.data_key) out.push("now gets the node's vault data key");
  return [...out, ...limitWidening(from.limits, to.limits)];
}
