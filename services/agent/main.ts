// `unibus-agent`: the node's command line. It parses the flags and runs one command: `join` and
// `enroll-wait` (enroll.ts), `status`, `run` (the daemon: run/), `vault adopt-key`, `vault cold-unlock`,
// `wg update` (wg-update.ts), `mesh key` and `mesh up` (mesh/mesh-up.ts).
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { isIPv4 } from "node:net";
import { createInterface } from "node:readline";
import { NodeLabels, wgEndpointProblem } from "../../schemas/mod.ts";
import { exitCodeOf, isErrorCode, parseGenesisKey } from "../core/mod.ts";
import { EnrollError, enrollWait, join, type JoinOptions } from "./enroll.ts";
import { NodeStore } from "./node-store.ts";
import { AgentError, runDaemon, type AgentOptions } from "./run/agent.ts";
import { DEFAULT_DATA_DIR, options } from "./cli-options.ts";
import { AdoptError, ColdStartError, KeyHandoff, adoptKey, coldUnlock, keyRuntimeDir } from "./vault/mod.ts";
import { KeyHandoffError } from "../bus/mod.ts";
import { writableRootProblem } from "./supervisor/mod.ts";
import { disableIpv6 } from "./run/ipv6.ts";
import { wgUpdate } from "./wg-update.ts";
import { meshUp, readStaticPeers } from "./mesh/mod.ts";

export const usage = `usage: unibus-agent [flags] <command>

commands:
  join --token-file FILE | --token -   enroll with an invite (unibus node invite); "-" reads it from stdin
       [--token TOKEN]                 (also accepted, but then the token shows in the process list)
       [--wg-endpoint HOST:PORT]       where the other nodes reach this node's WireGuard port (also
                                       for enroll-wait); the key pair is made here (wg.key, 0600)
  enroll-wait --bundle-file FILE | --bundle -
                                       print a registration code and wait for an operator to run
                                       unibus node enroll --code CODE --token INVITE
  run [--services-dir DIR]             the daemon: runs this node's services (DIR/<name>.json, default
                                       <data dir>/services), answers signed commands on
                                       unibus.cmd.node.<node>.<action>, ships logs, reports events;
                                       SIGTERM or SIGINT stops the services and exits
      [--vault]                        vault mode: make this node's data key (once the fleet has 5
                                       nodes) and split it among its peers; a node that has one
                                       (vault.json) unlocks it from its peers at every start
      [--genesis-key KEY]              with fewer peers, keep the key under this operator key until the
                                       fifth node joins (unibus node unlock --genesis): a curve public
                                       key (X…), or the scrypt:…:X… spec that unibus vault genesis-key
                                       derives from a passphrase
      [--allow-unsandboxed-steps]      where bwrap cannot run, run releases' install and health
                                       steps as the agent, unsandboxed (else such updates are refused)
                                       (start it as bin/unibus-agent-boot [flags] run to take updates of
                                       its own code: the boot step picks a release slot or this code)
      [--writable-root DIR]            services may also keep data below DIR (repeatable; DIR must be
                                       root's own and writable by no one else); by default only
                                       <data dir>/service-data/<service> may be a writable path
      [--mesh]                         as root: bring up this node's WireGuard interface and keep its
                                       peers in step with the fleet (kernel WireGuard, else wireguard-go)
      [--wg-interface NAME]            the mesh's interface (default unibus0)
      [--firewall]                     with --mesh: an nftables table of the agent's own lets only the
                                       mesh's peers in on its interface (and no IPv6 there)
      [--route-port N --route-peer IP] with --firewall: the NATS route port takes only these addresses
                                       (the cluster's other servers; --route-peer is repeatable)
      [--mesh-static FILE]             with --mesh: peers kept whatever the fleet lists (the cluster's
                                       servers, as deploy-cluster.sh writes them: {"peers":[…]})
      [--mesh-state FILE]              with --mesh: the mesh as status reports it, written after every
                                       sync (0644, public keys only) for membershipd's /healthz
      [--disable-ipv6]                 switch IPv6 off on this host (its network namespace) first
      [--allow-luks]                   as root: open the LUKS devices services declare with the data key
                                       the unlocked key goes to its consumers in $UNIBUS_KEY_RUNTIME_DIR
                                       (default /run/unibus/<node>, must be tmpfs)
  vault adopt-key --from FILE --operator-key X… | --no-cold-start
                                       control-plane nodes, once: this node's JetStream at-rest key (FILE)
                                       becomes its vault data key, split among its peers; FILE is wiped
                                       after the key is rebuilt from them. --operator-key keeps a copy
                                       sealed to the operator for a full-cluster cold start
  vault cold-unlock                    full-cluster cold start: prints a request line for
                                       unibus vault cold-answer, reads its answer on stdin and hands the
                                       key to membershipd (--at-rest-key-handoff) on tmpfs
  mesh key                             this node's WireGuard public key (the key pair is made if missing)
  mesh up --overlay-address IP/BITS [--listen-port 51820] [--wg-interface NAME] [--mesh-static FILE]
                                       as root: bring the interface up with this node's key and FILE's
                                       peers now, without membershipd (a control-plane node's mesh
                                       before its routes; deploy-cluster.sh runs it)
  wg update [--rotate-key] [--wg-endpoint HOST:PORT | --no-wg-endpoint]
                                       a new WireGuard key pair for this node, or a new endpoint:
                                       membershipd records it, every peer and the running agent take it
  status                               this node's enrollment

flags (env in brackets):
  --data-dir DIR [UNIBUS_AGENT_DATA_DIR]  keys and credentials (default local_files/agent)
  --name NAME                             the node's name (default: host name)
  --label KEY=VALUE                       a label (repeatable)
  --json                                  machine-readable output
  --timeout MS                            request timeout (default 10000)

exit codes: 0 ok · 1 refused · 2 usage error · 3 server unreachable`;

function usageError(message: string): never {
  throw new EnrollError("E_USAGE", `${message} (see unibus-agent --help)`);
}

/** A secret from a file, from stdin ("-"), or (discouraged) inline. */
function secretInput(inline: string | undefined, file: string | undefined, what: string): string {
  if (file) return readFileSync(resolve(file), "utf8").trim();
  if (inline === "-") return readFileSync(0, "utf8").trim();
  if (inline) return inline;
  return usageError(`${what} is required`);
}

function parseLabels(list: string[] = []): Record<string, string> {
  const labels = Object.fromEntries(
    list.map((l) => {
      const i = l.indexOf("=");
      return i > 0 ? [l.slice(0, i), l.slice(i + 1)] : usageError(`--label takes KEY=VALUE, not "${l}"`);
    }),
  );
  const r = NodeLabels.safeParse(labels);
  return r.success ? r.data : usageError(`bad labels: ${r.error.issues[0]?.message}`);
}

function wgEndpoint(text: string | undefined): { wgEndpoint?: string } {
  if (text === undefined) return {};
  const problem = wgEndpointProblem(text);
  return problem ? usageError(`--wg-endpoint ${JSON.stringify(text)} ${problem}`) : { wgEndpoint: text };
}

function defaultName(): string {
  return (
    hostname()
      .toLowerCase()
      .replace(/[^a-z0-9_-]/g, "-")
      .replace(/^[^a-z0-9]+/, "")
      .slice(0, 63) || "node"
  );
}

type Flags = ReturnType<typeof parseFlags>["values"];

function parseFlags(argv: string[]) {
  return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
}

export async function main(argv: string[]): Promise<number> {
  let json = false;
  try {
    const { values: f, positionals } = parseFlags(argv);
    json = f.json ?? false;
    if (f.help || positionals.length === 0) {
      console.log(usage);
      return f.help ? 0 : 2;
    }
    const store = new NodeStore(resolve(f["data-dir"] ?? process.env.UNIBUS_AGENT_DATA_DIR ?? DEFAULT_DATA_DIR));
    const log = (line: string) => process.stderr.write(`unibus-agent: ${line}\n`);
    const o: JoinOptions = {
      node: f.name ?? defaultName(),
      labels: parseLabels(f.label),
      ...wgEndpoint(f["wg-endpoint"]),
      timeoutMs: Number(f.timeout ?? 10_000),
      log,
    };
    const [command] = positionals;
    if (command === "status") return status(store, json);
    if (command === "run") {
      const options = daemonOptions(store, f, log);
      if (f["disable-ipv6"]) disableIpv6();
      return await runDaemon(options);
    }
    if (command === "vault") return await vaultCommand(store, positionals.slice(1), f, log, json);
    if (command === "wg") return await wgCommand(store, positionals.slice(1), f, json);
    if (command === "mesh") return await meshCommand(store, positionals.slice(1), f, json);
    if (command === "join" || command === "enroll-wait") return await enroll(command, store, f, o, json);
    return usageError(`unknown command "${positionals.join(" ")}"`);
  } catch (err) {
    return failed(err, json);
  }
}

/**
 * The error as one line on stderr (and the JSON answer with --json); the exit code by its code
 * (services/core/errors.ts). Any error carrying a registered code (the vault's, the CA pin's) keeps it.
 */
function failed(err: unknown, json: boolean): number {
  const code = (err as { code?: unknown }).code;
  const e =
    err instanceof EnrollError || err instanceof AgentError || (typeof code === "string" && isErrorCode(code))
      ? { code: code as string, message: (err as Error).message }
      : new EnrollError(/ERR_PARSE_ARGS/.test(String(code ?? "")) ? "E_USAGE" : "E_INTERNAL", (err as Error).message);
  if (json) process.stdout.write(JSON.stringify({ ok: false, error: { code: e.code, message: e.message } }) + "\n");
  process.stderr.write(`unibus-agent: ${e.message} [${e.code}]\n`);
  return exitCodeOf(e.code);
}

function status(store: NodeStore, json: boolean): number {
  const c = store.enrolled();
  const shown = c
    ? { enrolled: true, node: c.node, address: c.address, cluster: c.cluster, urls: c.urls }
    : { enrolled: false };
  process.stdout.write(
    json
      ? JSON.stringify(shown) + "\n"
      : c
        ? `${c.node} (${c.address}) in cluster ${c.cluster}, via ${c.urls.join(", ")}\n`
        : "not enrolled\n",
  );
  return c ? 0 : 1;
}

async function enroll(
  command: "join" | "enroll-wait",
  store: NodeStore,
  f: Flags,
  o: JoinOptions,
  json: boolean,
): Promise<number> {
  const already = store.enrolled();
  if (already)
    throw new EnrollError(
      "E_ALREADY_ENROLLED",
      `this data dir is already enrolled as ${already.node} (${already.address}); use another --data-dir to enroll again`,
    );
  const config =
    command === "join"
      ? await join(store, secretInput(f.token, f["token-file"], "--token-file or --token"), o)
      : await enrollWait(store, secretInput(f.bundle, f["bundle-file"], "--bundle-file or --bundle"), {
          ...o,
          onCode: (code) =>
            process.stdout.write(
              json
                ? JSON.stringify({ code }) + "\n"
                : `registration code: ${code.slice(0, 4)}-${code.slice(4)}\nwaiting for an operator to run: unibus node enroll --code ${code} --token <invite>\n`,
            ),
        });
  const shown = { node: config.node, address: config.address, cluster: config.cluster, creds: store.path("creds") };
  process.stdout.write(
    json
      ? JSON.stringify({ ok: true, result: shown }) + "\n"
      : `enrolled as ${config.node} (${config.address}) in cluster ${config.cluster}; credentials in ${shown.creds}\n`,
  );
  return 0;
}

/** `run`'s flags, checked before anything starts. */
function daemonOptions(store: NodeStore, f: Flags, log: (line: string) => void): AgentOptions {
  const vault = { create: f.vault ?? false, genesisKey: f["genesis-key"] ?? null, allowLuks: f["allow-luks"] ?? false };
  if (vault.genesisKey !== null && !parseGenesisKey(vault.genesisKey))
    usageError(
      "--genesis-key takes an operator curve public key (X…) or the scrypt:…:X… spec of unibus vault genesis-key",
    );
  const permitted = (f["writable-root"] ?? []).map((r) =>
    existsSync(r) ? realpathSync(resolve(r)) : usageError(`--writable-root ${r} does not exist`),
  );
  for (const r of permitted) {
    const problem = writableRootProblem(r);
    if (problem) usageError(`${problem}: a service could swap a directory in it for a link`);
  }
  const servicesDir = f["services-dir"];
  return {
    store,
    log,
    ...(servicesDir ? { servicesDir: resolve(servicesDir) } : {}),
    vault,
    allowUnsandboxedSteps: f["allow-unsandboxed-steps"] ?? false,
    writableRoots: permitted,
    ...meshOptions(f),
  };
}

/** --mesh, --wg-interface, --firewall, --route-port, --route-peer, --mesh-static and --mesh-state, checked together. */
function meshOptions(f: Flags): Pick<AgentOptions, "mesh"> {
  if (!f.mesh) {
    for (const flag of ["wg-interface", "firewall", "route-port", "route-peer", "mesh-static", "mesh-state"] as const)
      if (f[flag] !== undefined) usageError(`--${flag} needs --mesh`);
    return {};
  }
  if (!f.firewall && (f["route-port"] !== undefined || f["route-peer"] !== undefined))
    usageError("--route-port and --route-peer need --firewall");
  const peers = f["route-peer"] ?? [];
  for (const p of peers) if (!isIPv4(p)) usageError(`--route-peer ${JSON.stringify(p)} is not an IPv4 address`);
  const port = f["route-port"] === undefined ? null : Number(f["route-port"]);
  if (port !== null && !(Number.isInteger(port) && port >= 1 && port <= 65_535))
    usageError(`--route-port ${JSON.stringify(f["route-port"])} is not a port (1-65535)`);
  const route = port === null ? {} : { route: { port, peers } };
  const statics = f["mesh-static"] === undefined ? {} : { staticPeers: staticPeers(f["mesh-static"]) };
  const state = f["mesh-state"] === undefined ? {} : { stateFile: resolve(f["mesh-state"]) };
  return {
    mesh: {
      iface: meshInterface(f["wg-interface"]),
      ...(f.firewall ? { firewall: route } : {}),
      ...statics,
      ...state,
    },
  };
}

function staticPeers(file: string) {
  try {
    return readStaticPeers(resolve(file));
  } catch (err) {
    return usageError((err as Error).message);
  }
}

/** A Linux interface name: 1 to 15 of letters, digits, "-", "_" and ".". */
function meshInterface(name = "unibus0"): string {
  return /^[A-Za-z0-9_.-]{1,15}$/.test(name) && name !== "." && name !== ".."
    ? name
    : usageError(`--wg-interface ${JSON.stringify(name)} is not an interface name (1-15 letters, digits, - _ .)`);
}

/** `wg update [--rotate-key] [--wg-endpoint HOST:PORT | --no-wg-endpoint]`. */
async function wgCommand(store: NodeStore, args: string[], f: Flags, json: boolean): Promise<number> {
  if (args.join(" ") !== "update") usageError(`unknown command "wg ${args.join(" ")}" (wg update)`);
  if (f["wg-endpoint"] !== undefined && f["no-wg-endpoint"])
    usageError("--wg-endpoint and --no-wg-endpoint: one or the other");
  const endpoint = f["no-wg-endpoint"]
    ? null
    : f["wg-endpoint"] === undefined
      ? undefined
      : wgEndpoint(f["wg-endpoint"]).wgEndpoint;
  if (!f["rotate-key"] && endpoint === undefined)
    usageError("wg update needs --rotate-key, --wg-endpoint or --no-wg-endpoint");
  const r = await wgUpdate({
    store,
    rotateKey: f["rotate-key"] ?? false,
    endpoint,
    timeoutMs: Number(f.timeout ?? 10_000),
  });
  process.stdout.write(
    json
      ? `${JSON.stringify({ ok: true, result: r })}\n`
      : `${r.node}: WireGuard key ${r.wg_key}, endpoint ${r.wg_endpoint ?? "none"}${r.changed ? "" : " (as before)"}; every peer and this node's running agent take it within seconds\n`,
  );
  return 0;
}

/**
 * `mesh key`: this node's WireGuard public key (its key pair made here when there is none yet).
 * `mesh up`: the interface with that key, --overlay-address and --listen-port, and --mesh-static's
 * peers (mesh/mesh-up.ts): what deploy-cluster.sh runs before membershipd with ROUTE_NETWORK=wg.
 */
async function meshCommand(store: NodeStore, args: string[], f: Flags, json: boolean): Promise<number> {
  const verb = args.join(" ");
  if (verb === "key") {
    const key = store.wgPublicKey();
    process.stdout.write(json ? `${JSON.stringify({ ok: true, result: { public_key: key } })}\n` : `${key}\n`);
    return 0;
  }
  if (verb !== "up") return usageError(`unknown command "mesh ${verb}" (mesh key, mesh up)`);
  const address = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(f["overlay-address"] ?? "");
  if (!address || !isIPv4(address[1]!) || Number(address[2]) < 8 || Number(address[2]) > 30)
    usageError("mesh up needs --overlay-address IP/BITS (this node's WG_IP and the overlay's prefix, /8 to /30)");
  const port = Number(f["listen-port"] ?? 51_820);
  if (!(Number.isInteger(port) && port >= 1 && port <= 65_535))
    usageError(`--listen-port ${JSON.stringify(f["listen-port"])} is not a port (1-65535)`);
  const r = await meshUp({
    iface: meshInterface(f["wg-interface"]),
    keyFile: store.path("wg"),
    publicKey: store.wgPublicKey(),
    overlayIp: address[1]!,
    prefixBits: Number(address[2]),
    listenPort: port,
    peers: f["mesh-static"] === undefined ? [] : staticPeers(f["mesh-static"]),
  });
  process.stdout.write(
    json
      ? `${JSON.stringify({ ok: true, result: r })}\n`
      : `${r.interface} up at ${r.overlay}, port ${r.listen_port}${r.mode ? ` (${r.mode})` : ""}: ${r.added} peer(s) added, ${r.updated} updated${r.skipped.length ? `; left out (their address is another key's): ${r.skipped.join(", ")}` : ""}\n`,
  );
  return 0;
}

const CURVE_KEY = /^X[A-Z2-7]{55}$/;

async function vaultCommand(
  store: NodeStore,
  args: string[],
  f: Flags,
  log: (line: string) => void,
  json: boolean,
): Promise<number> {
  const [verb] = args;
  const node = store.enrolled()?.node ?? usageError(`${store.dir} holds no enrollment`);
  if (verb === "adopt-key") {
    const from = f.from ?? usageError("vault adopt-key needs --from FILE (the at-rest key file)");
    const operatorKey = f["operator-key"] ?? null;
    if (operatorKey === null && !f["no-cold-start"])
      usageError(
        "vault adopt-key needs --operator-key X… (a copy for a full-cluster cold start), or --no-cold-start to go without one",
      );
    if (operatorKey !== null && !CURVE_KEY.test(operatorKey))
      usageError("--operator-key takes an operator curve public key (X…)");
    const r = await adoptKey({ store, from: resolve(from), operatorKey, log }).catch((err) => {
      throw err instanceof AdoptError ? new EnrollError(err.code, err.message) : err;
    });
    process.stdout.write(
      json
        ? JSON.stringify({ ok: true, result: r }) + "\n"
        : `${r.node}: the JetStream key is now the vault's data key (epoch ${r.epoch}, K=${r.k} of ${r.n}); ${r.removed} wiped${r.cold_start ? "; cold-start copy sealed to the operator" : ""}\n`,
    );
    return 0;
  }
  if (verb === "cold-unlock") {
    const handoff = new KeyHandoff(keyRuntimeDir(node));
    const lines = createInterface({ input: process.stdin });
    const answer = (request: string) =>
      new Promise<string>((res, rej) => {
        process.stdout.write(request + "\n");
        process.stderr.write(
          "unibus-agent: give that line to unibus vault cold-answer --kex-seed FILE on the operator's machine, then paste its answer here\n",
        );
        lines.once("line", res);
        lines.once("close", () => rej(new EnrollError("E_USAGE", "stdin closed before the answer came")));
      });
    try {
      await coldUnlock({ node, dir: store.dir, handoff, answer }).catch((err) => {
        throw err instanceof ColdStartError || err instanceof KeyHandoffError
          ? new EnrollError(err.code, err.message)
          : err;
      });
    } finally {
      lines.close();
    }
    log(`the key is handed over in ${handoff.atRestPath}; membershipd --at-rest-key-handoff takes it`);
    return 0;
  }
  return usageError(`unknown vault command "${args.join(" ")}" (adopt-key, cold-unlock)`);
}
