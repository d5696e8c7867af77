// The `unibus` command. Each verb is a signed request to a command subject, except `events` and
// `audit`, which read the stream directly.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { MembershipActionArgs, isMembershipAction } from "../../schemas/mod.ts";
import { newUserSeed, parseDurationMs, signerFromSeed } from "../core/mod.ts";
import { credsFromSeedFile, decodeEvent, lastSequence, readEventMessages, replaceSecretFile, writeSecretFile } from "../bus/mod.ts";
import { auditReplay, auditVerify } from "./audit.ts";
import { loadIdentity, openConnection, type GlobalOptions } from "./context.ts";
import { DRY_RUN, printDryRun } from "./dry-run.ts";
import { monitorReport } from "./monitor.ts";
import { nodeVerb } from "./node.ts";
import { clusterVerb, SCALE_TIMEOUT_MS } from "./cluster.ts";
import { nodeUpdateVerb, releaseVerb, rolloutVerb } from "./release.ts";
import { CliError, EXIT, need, print, table, usageError } from "./output.ts";
import { buildCommand, MEMBERSHIP_PREFIX, resultOf, sendCommand } from "./request.ts";
import { vaultStatus } from "./vault.ts";
import { nodeUnlock, vaultGenesisKey } from "./genesis.ts";
import { coldAnswerVerb } from "./vault-cold.ts";

/** Every request's timeout unless --timeout says otherwise. */
const DEFAULT_TIMEOUT_MS = 5000;

export const usage = `usage: unibus [global flags] <verb> [args]

verbs:
  user add <handle> [--role admin|monitor|…] [--sign-key U…] [--kex-key X…]
                                       without --sign-key a new key is made and its seed saved (0600)
  user list | user revoke <handle> [--reason TEXT]   revoking cuts its NATS connections at once
  node invite [--expiry 24h] [--uses 1] [--note TEXT]  a one-time token for unibus-agent join (shown once)
  node invites | node invite revoke <hash-prefix>
  node enroll --code CODE --token-file FILE|--token -   enroll a node waiting with unibus-agent enroll-wait
  node wait-bundle [--expiry 24h]      the bundle unibus-agent enroll-wait starts with
  node list | node show <node> | node revoke <node> [--reason TEXT]
  node leave <node>                    tells the node's agent to stop its services and forget its enrollment,
                                       then removes the node from the fleet (even if the agent does not answer)
  node logs <node> <service> [--lines 100] [--since 10m] [--follow]
                                       a service's output from UNIBUS_LOGS (admins); --since 2h, 30s, 1d or an ISO time
  node status <node>                   asks the node's agent: its sandbox and each service's state, pid, uptime,
                                       restarts, last exit; without an answer (2 s), the last state it reported
  node status [--all]                  every node's services as last reported to membershipd
  node start|stop|restart <node> <service>   one service on one node; exit 1 unless it ends up running (stopped)
  node check <node> <service>          runs the service's health check on the node; exit 1 if it fails
  node command <selector> <action> [--service S] [--concurrency 64] [--timeout 5s]
                                       the action (status, start, stop, restart, check) on every active node the
                                       selector matches, in parallel; selector: role=web,zone=eu (every label must
                                       match), name=<node>, or all; a table of ok / failed / timed out / no agent,
                                       exit 1 unless every node is ok
  room create <room> [--subject TEXT] | room list [--active] | room show <room> | room archive <room>
  member add <room> <user> [--role owner|moderator|member] | member role <room> <user> <role>
  member remove <room> <user> | member list --room R | member list --user U
  cluster status                       peers, meta leader, and each stream's leader, replicas and lag
  cluster scale --replicas 3           raise every stream's and bucket's replicas in place (needs 3 peers)
  release publish <dir|tarball> --version V --key FILE [--name N] [--notes T] [--spec FILE]
                                       tars a directory, signs its manifest (minisign format) with the key in a 0600 file
                                       (nkey seed or minisign -W secret key), uploads to UNIBUS_releases, publishes it
  release manifest <dir|tarball> --version V [--out DIR]   tarball + canonical manifest to sign with minisign -S
  release publish <tarball> --manifest FILE [--signature FILE.minisig]   publish a manifest signed with minisign
  release list [--name N] | release show <name> <version> | release key <key file> (the public key for agents)
  rollout start <version> --selector role=web|--all [--canary 1] [--batch 10%|N] [--max-failures 1] [--force] [--release NAME]
                                       the release is the one published with that version (--release NAME, or
                                       rollout start <name> <version>, when several are); canary first, then batches
  rollout status <id> | rollout list | rollout resume <id> | rollout abort <id> [--reason TEXT]
  node lock <node> [--reason TEXT] | node unlock <node>   a locked node is skipped by rollouts unless --force
  node update <node> <name> <version>  updates one node now (A/B slots, health probe, rollback on failure)
  events tail [--lines N] [--follow]   the newest events, then new ones as they come
  audit replay                         rebuild every projection from the stream, diff against KV
  audit verify [--trust KEY]…          check every signature and every aggregate's hash chain
  req <subject> <json-args>            send a signed command with these args, print the reply
  monitor report [--env FILE] [--url URL[,URL]] [--timeout 2s]
                                       GET /healthz of every node of a cluster.env at once (FILE default
                                       $UNIBUS_CLUSTER_ENV, else deploy/cluster/cluster.env): each node at its WG_IP when
                                       ROUTE_NETWORK=wg, its PUBLIC_IP when public, port HTTP_PORT; or of the given base
                                       URLs. One table: status, posture flags (a name when on, -name when off), peers,
                                       meta leader, last sequence, projection lag, problems. A node gets --timeout (2 s);
                                       an answer that is no /healthz JSON, or none in time, is unreachable. Needs no NATS.
                                       exit 0 every node ok · 1 some degraded, none unreachable · 2 some unreachable
                                       (2 also for a usage or cluster.env error: then nothing was polled)
  vault status                         each vault-mode node: K, N, epoch, guardians active and reachable, unlock state
  vault genesis-key [--passphrase-file FILE]
                                       derives the operator's genesis key from a passphrase (scrypt, a new salt) and prints
                                       the spec for unibus-agent run --vault --genesis-key; the passphrase comes from FILE
                                       (mode 0600), UNIBUS_GENESIS_PASSPHRASE or a prompt (echo off), never argv
  node unlock --genesis <node> --kex-seed FILE | [--passphrase-file FILE]
                                       unlocks a genesis-locked node (a fleet under five nodes) with the operator's curve seed,
                                       or with the passphrase its genesis key was made for (FILE, the env, or a prompt)
  vault cold-answer --kex-seed FILE    full-cluster cold start: reads the request line of unibus-agent vault cold-unlock
                                       on stdin, prints the answer line (the node's key sealed to its one-time key); no NATS

global flags (env in brackets):
  --data-dir DIR [UNIBUS_DATA_DIR]     where membershipd keeps membershipd.json and admin.nk (default local_files)
  --server URL [UNIBUS_SERVER]         NATS URL (default: from DATA_DIR/membershipd.json)
  --creds FILE [UNIBUS_CREDS]          NATS .creds to connect with (default DATA_DIR/admin.creds)
  --ca FILE [UNIBUS_CA]                cluster CA certificate (default DATA_DIR/tls/ca.pem)
  --identity FILE [UNIBUS_IDENTITY]    seed (or .creds) file to sign with (default: the --creds file, else DATA_DIR/admin.nk)
  --as HANDLE [UNIBUS_AS]              the identity's handle (default admin)
  --json                               machine-readable output
  --dry-run                            print the signed command and its subject instead of sending it
  --timeout MS|DURATION                request timeout: 5000, 500ms, 5s (default 5 s; agent verbs: status 2 s, start 15 s,
                                       stop, restart and check 30 s, leave 15 s, each node of node command 5 s; for node leave
                                       it bounds the agent's answer, and membershipd's steps wait at least 5 s)

exit codes: 0 ok · 1 refused, failed, or differences found · 2 usage error · 3 server unreachable`;

const globalOptions = {
  "data-dir": { type: "string" }, server: { type: "string" }, identity: { type: "string" }, as: { type: "string" },
  json: { type: "boolean" }, "dry-run": { type: "boolean" }, timeout: { type: "string" }, help: { type: "boolean", short: "h" },
  role: { type: "string" }, "sign-key": { type: "string" }, "kex-key": { type: "string" }, "seed-out": { type: "string" },
  subject: { type: "string" }, active: { type: "boolean" }, room: { type: "string" }, user: { type: "string" },
  lines: { type: "string" }, follow: { type: "boolean" }, since: { type: "string" }, trust: { type: "string", multiple: true }, limit: { type: "string" },
  creds: { type: "string" }, ca: { type: "string" }, reason: { type: "string" }, expiry: { type: "string" }, uses: { type: "string" },
  note: { type: "string" }, code: { type: "string" }, token: { type: "string" }, "token-file": { type: "string" },
  service: { type: "string" }, concurrency: { type: "string" }, all: { type: "boolean" },
  replicas: { type: "string" },
  env: { type: "string" }, url: { type: "string", multiple: true },
  version: { type: "string" }, key: { type: "string" }, name: { type: "string" }, notes: { type: "string" }, spec: { type: "string" }, manifest: { type: "string" },
  signature: { type: "string" }, out: { type: "string" }, selector: { type: "string" }, canary: { type: "string" }, batch: { type: "string" },
  "max-failures": { type: "string" }, force: { type: "boolean" }, release: { type: "string" },
  genesis: { type: "boolean" }, "kex-seed": { type: "string" }, "passphrase-file": { type: "string" },
} satisfies ParseArgsConfig["options"];

export type Flags = { [K in keyof typeof globalOptions]?: (typeof globalOptions)[K] extends { multiple: true } ? string[] : (typeof globalOptions)[K]["type"] extends "boolean" ? boolean : string };

/** Runs the CLI and returns its exit code; output goes to stdout, errors to stderr. */
export async function main(argv: string[]): Promise<number> {
  let flags: Flags, positionals: string[];
  try {
    ({ values: flags, positionals } = parseArgs({ args: argv, options: globalOptions, allowPositionals: true, strict: true }) as { values: Flags; positionals: string[] });
  } catch (err) {
    return fail(new CliError("E_USAGE", `${(err as Error).message} (see unibus --help)`, EXIT.usage), false);
  }
  if (flags.help || positionals.length === 0) {
    console.log(usage);
    return flags.help ? EXIT.ok : EXIT.usage;
  }
  const o: GlobalOptions = {
    dataDir: flags["data-dir"] ?? process.env.UNIBUS_DATA_DIR ?? "local_files",
    server: flags.server ?? process.env.UNIBUS_SERVER,
    identity: flags.identity ?? process.env.UNIBUS_IDENTITY,
    creds: flags.creds ?? process.env.UNIBUS_CREDS,
    ca: flags.ca ?? process.env.UNIBUS_CA,
    as: flags.as ?? process.env.UNIBUS_AS ?? "admin",
    json: flags.json ?? false,
    dryRun: flags["dry-run"] ?? false,
    timeoutMs: DEFAULT_TIMEOUT_MS,
  };
  try {
    if (flags.timeout !== undefined) o.timeoutMs = parseTimeoutMs(flags.timeout);
  } catch (err) {
    return fail(err, o.json);
  }
  let nc: NatsConnection | null = null;
  const connection = async () => (nc ??= await openConnection(o));
  try {
    return await dispatch(positionals, flags, o, connection);
  } catch (err) {
    return fail(err, o.json);
  } finally {
    await (nc as NatsConnection | null)?.close();
  }
}

/** --timeout: milliseconds ("5000") or a duration ("500ms", "5s", "1m"). */
function parseTimeoutMs(text: string): number {
  const ms = /^\d+$/.test(text.trim()) ? Number(text) : parseDurationMs(text);
  if (ms === null || ms < 1 || ms > 3_600_000) usageError(`--timeout takes milliseconds or a duration like 500ms, 5s or 1m (up to 1h), not "${text}"`);
  return ms;
}

function fail(err: unknown, json: boolean): number {
  const e = err instanceof CliError ? err : new CliError("E_INTERNAL", (err as Error).message ?? String(err), EXIT.failed);
  if (json) process.stdout.write(JSON.stringify({ ok: false, error: { code: e.code, message: e.message } }) + "\n");
  process.stderr.write(`unibus: ${e.message} [${e.code}]\n`);
  return e.exitCode;
}

async function dispatch(pos: string[], f: Flags, o: GlobalOptions, connection: () => Promise<NatsConnection>): Promise<number> {
  const [noun, verb, ...rest] = pos;
  const send = (action: string, args: Record<string, unknown>) => command(o, connection, `${MEMBERSHIP_PREFIX}${action}`, action, args);
  const limit = f.limit ? { limit: Number(f.limit) } : {};
  switch (noun === "req" ? "req" : `${noun} ${verb ?? ""}`.trim()) {
    case "user add": return userAdd(o, f, need(rest, 1, "a handle")[0]!, send);
    case "user list": return show(o, await send("user.list", limit), (r) => table(r.items, ["handle", "role", "revoked", "sign_key", "created_at"]));
    case "user revoke": {
      const [handle] = need(rest, 1, "a handle");
      return show(o, await send("user.revoke", { handle, ...(f.reason ? { reason: f.reason } : {}) }), (r) => `revoked ${handle} (${r.key}): its connections are cut`);
    }
    case "room create": return show(o, await send("room.create", { room: need(rest, 1, "a room name")[0], subject: f.subject ?? "" }), (r) => `created room ${rest[0]} (event ${r.seq})`);
    case "room list": return show(o, await send("room.list", { ...limit, archived: !f.active }), (r) => table(r.items, ["room", "subject", "members", "archived", "created_by", "created_at"]));
    case "room show": return show(o, await send("room.show", { room: need(rest, 1, "a room name")[0] }), (r) =>
      `${table([r.room], ["room", "subject", "archived", "created_by", "created_at"])}\n\n${table(r.members, ["user", "role", "since"])}`);
    case "room archive": return show(o, await send("room.archive", { room: need(rest, 1, "a room name")[0] }), () => `archived room ${rest[0]}`);
    case "member add": {
      const [room, user] = need(rest, 2, "<room> <user>");
      return show(o, await send("member.add", { room, user, ...(f.role ? { role: f.role } : {}) }), () => `added ${user} to ${room}`);
    }
    case "member role": {
      const [room, user, role] = need(rest, 3, "<room> <user> <role>");
      return show(o, await send("member.role", { room, user, role }), () => `${user} is now ${role} in ${room}`);
    }
    case "member remove": {
      const [room, user] = need(rest, 2, "<room> <user>");
      return show(o, await send("member.remove", { room, user }), () => `removed ${user} from ${room}`);
    }
    case "member list": return show(o, await send("member.list", { ...(f.room ? { room: f.room } : {}), ...(f.user ? { user: f.user } : {}), ...limit }),
      (r) => table(r.items, f.room ? ["user", "role", "since"] : ["room", "role"]));
    case "node leave": {
      // --timeout bounds the wait for the node's agent; membershipd's own steps (the revocation
      // among them) get at least the default, so a short agent wait cannot fail a leave that
      // membershipd is carrying out (seen in CI: --timeout 300ms, membershipd answered later).
      const patient = { ...o, timeoutMs: Math.max(o.timeoutMs, DEFAULT_TIMEOUT_MS) };
      const sendPatiently: Send = (action, args) => command(patient, connection, `${MEMBERSHIP_PREFIX}${action}`, action, args);
      return nodeVerb(verb!, rest, f, o, sendPatiently, show, connection);
    }
    case "node invite": case "node invites": case "node enroll": case "node wait-bundle": case "node list": case "node show": case "node revoke": case "node logs":
    case "node status": case "node start": case "node stop": case "node restart": case "node check": case "node command":
      return nodeVerb(verb!, rest, f, o, send, show, connection);
    case "cluster status": return clusterVerb("status", rest, o, send, send);
    case "cluster scale": {
      const slow = { ...o, timeoutMs: SCALE_TIMEOUT_MS };
      return clusterVerb("scale", f.replicas ? [f.replicas, ...rest] : rest, o, send, (action, args) => command(slow, connection, `${MEMBERSHIP_PREFIX}${action}`, action, args));
    }
    case "release manifest": case "release publish": case "release list": case "release show": case "release key":
      return releaseVerb(verb!, rest, f, o, send, show, connection);
    case "rollout start": case "rollout status": case "rollout list": case "rollout resume": case "rollout abort":
      return rolloutVerb(verb!, rest, f, o, send, show);
    // `node unlock --genesis` opens a genesis-locked vault; plain `node unlock` lifts an update lock.
    case "node lock": case "node unlock": case "node update":
      if (verb === "unlock" && f.genesis) return nodeUnlock(rest, f, o, connection);
      return nodeUpdateVerb(verb!, rest, f, o, send, show, connection);
    case "events tail": return eventsTail(o, f, await connection());
    case "audit replay": return replay(o, await connection());
    case "audit verify": return verify(o, f, await connection());
    case "monitor report": return monitorReport(rest, f, o);
    case "vault genesis-key": return vaultGenesisKey(o, f["passphrase-file"]);
    case "vault status": return vaultStatus(o, send, connection, f.timeout === undefined ? 2000 : o.timeoutMs);
    case "vault cold-answer": return coldAnswerVerb(f);
    case "req": {
      const [subject, json] = [verb, ...rest];
      if (!subject || rest.length !== 1) usageError("expected <subject> <json-args>");
      let args: unknown;
      try {
        args = JSON.parse(json!);
      } catch {
        usageError("the args are not valid JSON");
      }
      const action = commandAction(subject) ?? usageError("the subject must be unibus.cmd.membership.<action> or unibus.cmd.node.<node>.<action>");
      const reply = await command(o, connection, subject, action, args as Record<string, unknown>, true);
      print(true, reply, () => "");
      return reply?.ok === false ? EXIT.failed : EXIT.ok;
    }
    default:
      usageError(`unknown verb "${pos.join(" ")}"`);
  }
}

/** The action a command subject names: the envelope's action must be the same. */
function commandAction(subject: string): string | null {
  const t = subject.split(".");
  if (t[0] !== "unibus" || t[1] !== "cmd") return null;
  const action = t.slice(t[2] === "node" ? 4 : 3).join(".");
  return action === "" ? null : action;
}

export type Send = (action: string, args: Record<string, unknown>) => Promise<any>;

export function show(o: GlobalOptions, result: any, human: (r: any) => string): number {
  if (result === DRY_RUN) return EXIT.ok;
  print(o.json, result, () => human(result));
  return EXIT.ok;
}

/** Signs and sends one command (or prints it with --dry-run). `raw` returns the reply unopened. */
async function command(o: GlobalOptions, connection: () => Promise<NatsConnection>, subject: string, action: string, args: Record<string, unknown>, raw = false): Promise<any> {
  if (isMembershipAction(action) && !raw) {
    const check = MembershipActionArgs[action].safeParse(args);
    if (!check.success) usageError(check.error.issues.map((i) => `${i.path.join(".") || "args"}: ${i.message}`).join("; "));
  }
  const cmd = buildCommand(loadIdentity(o), o.as, action, args);
  if (o.dryRun) return printDryRun(o, subject, cmd);
  const reply = await sendCommand(await connection(), subject, cmd, o.timeoutMs);
  return raw ? reply : resultOf(reply);
}

async function userAdd(o: GlobalOptions, f: Flags, handle: string, send: (a: string, args: Record<string, unknown>) => Promise<any>): Promise<number> {
  let signKey = f["sign-key"];
  let seedPath: string | null = null;
  if (!signKey) {
    // A new identity: the seed is written 0600 next to its final place first and moved there only
    // once the user exists, so a failed or retried `user add` leaves nothing behind; never printed.
    seedPath = f["seed-out"] ?? join(o.dataDir, "users", `${handle}.nk`);
    if (existsSync(seedPath)) throw new CliError("E_USAGE", `${seedPath} already exists; move it away or pass --seed-out`, EXIT.usage);
    const seed = newUserSeed();
    signKey = signerFromSeed(seed).publicKey;
    if (!o.dryRun) {
      rmSync(`${seedPath}.pending`, { force: true });
      writeSecretFile(`${seedPath}.pending`, Buffer.concat([Buffer.from(seed), Buffer.from("\n")]));
    }
    seed.fill(0);
  }
  let result;
  try {
    result = await send("user.add", { handle, sign_key: signKey, ...(f.role ? { role: f.role } : {}), ...(f["kex-key"] ? { kex_key: f["kex-key"] } : {}) });
  } catch (err) {
    if (seedPath) rmSync(`${seedPath}.pending`, { force: true });
    throw err;
  }
  if (result === DRY_RUN) return show(o, result, () => "");
  if (seedPath) renameSync(`${seedPath}.pending`, seedPath);
  const credsFile = result.jwt ? writeUserCreds(result.jwt, seedPath, seedPath ? seedPath.replace(/\.nk$/, "") : join(o.dataDir, "users", handle)) : null;
  const { jwt: _jwt, ...shown } = result;
  return show(o, { ...shown, handle, sign_key: signKey, seed_file: seedPath, creds_file: credsFile },
    () => `created user ${handle} (${signKey})${seedPath ? `; its seed is in ${seedPath}` : ""}${credsFile ? `; its NATS credentials are in ${credsFile}` : ""}`);
}

/** users/<handle>.creds when we hold the seed; otherwise users/<handle>.jwt for its owner to combine with theirs. */
function writeUserCreds(jwt: string, seedPath: string | null, base: string): string {
  if (seedPath) {
    replaceSecretFile(`${base}.creds`, credsFromSeedFile(jwt, seedPath));
    return `${base}.creds`;
  }
  mkdirSync(dirname(base), { recursive: true, mode: 0o700 });
  writeFileSync(`${base}.jwt`, jwt + "\n", { mode: 0o600 });
  return `${base}.jwt`;
}

async function eventsTail(o: GlobalOptions, f: Flags, nc: NatsConnection): Promise<number> {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const last = await lastSequence(jsm);
  const lines = Number(f.lines ?? 20);
  if (!Number.isInteger(lines) || lines < 0) usageError("--lines takes a whole number");
  const from = Math.max(1, last - lines + 1);
  if (!f.follow && last === 0) return EXIT.ok;
  const stop = new Promise<void>((r) => process.once("SIGINT", () => r()));
  const iter = readEventMessages(js, jsm, f.follow ? { fromSeq: from, follow: true } : { fromSeq: from, untilSeq: last });
  const run = (async () => {
    for await (const m of iter) {
      const e = decodeEvent(m.data);
      if (o.json) process.stdout.write(JSON.stringify({ seq: m.seq, ...e }) + "\n");
      else process.stdout.write(`${String(m.seq).padStart(6)}  ${e.ts}  ${`${e.kind}/${e.aggregate}`.padEnd(24)} ${e.type.padEnd(18)} by ${e.actor.id}  ${JSON.stringify(e.data)}\n`);
    }
  })();
  await Promise.race([run, stop]);
  return EXIT.ok;
}

async function replay(o: GlobalOptions, nc: NatsConnection): Promise<number> {
  const r = await auditReplay(nc, jetstream(nc), await jetstreamManager(nc), !o.json);
  print(o.json, r, () => {
    const head = `replayed ${r.events} events in ${r.seconds.toFixed(2)} s (${r.rate}/s)${r.projections_caught_up ? "" : "; warning: membershipd's projector had not caught up"}`;
    if (r.differences.length === 0) return `${head}\nno differences: every KV bucket matches the stream`;
    return `${head}\n${r.differences.length} difference(s):\n${table(r.differences.map((d) => ({ ...d, expected: d.expected ?? null, actual: d.actual ?? null })), ["bucket", "key", "problem", "expected", "actual"])}`;
  });
  return r.differences.length ? EXIT.failed : EXIT.ok;
}

async function verify(o: GlobalOptions, f: Flags, nc: NatsConnection): Promise<number> {
  const r = await auditVerify(jetstream(nc), await jetstreamManager(nc), f.trust ?? [], !o.json);
  print(o.json, r, () => {
    const head = `verified ${r.events} events`;
    if (r.findings.length === 0) return `${head}: every signature and hash chain is intact`;
    return `${head}: ${r.findings.length} problem(s)\n${table(r.findings as unknown as Record<string, unknown>[], ["seq", "problem", "detail"])}`;
  });
  return r.findings.length ? EXIT.failed : EXIT.ok;
}
