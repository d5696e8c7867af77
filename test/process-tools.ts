// Process-level helpers for the membershipd / CLI tests: find the real processes behind the
// bin/ launchers,
// find the nats-server of a data dir, run membershipd to its exit, and clean up only what the
// tests started (identified by their temp data dirs).
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../services/bus/mod.ts";
import { ROOT, startMembershipd, tempDir, type MembershipdHandle } from "./harness.ts";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** True when `pid` is a live process (a zombie waiting to be reaped counts as dead). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return out;
}

/** Live nats-server processes running the config of this data dir's embedded server. */
export function natsServersFor(dataDir: string): number[] {
  const conf = join(dataDir, "nats", "server.conf");
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const argv = cmdline(pid);
    if (argv.length && /(^|\/)nats-server$/.test(argv[0]!) && argv.includes(conf) && isAlive(pid)) out.push(pid);
  }
  return out;
}

export function natsPidFile(dataDir: string): number {
  return Number(readFileSync(join(dataDir, "nats", "nats-server.pid"), "utf8").trim());
}

/** The node process that runs membershipd itself (the launcher's child), as recorded at ready. */
export function membershipdPid(dataDir: string): number {
  return JSON.parse(readFileSync(join(dataDir, "membershipd.json"), "utf8")).pid as number;
}

export async function waitUntil(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 50,
): Promise<number> {
  const started = Date.now();
  while (!(await cond())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
  return Date.now() - started;
}

/** startMembershipd on a fresh temp data dir (membershipd creates the key). */
export function startFreshMembershipd(opts: { args?: string[] } = {}): Promise<MembershipdHandle> {
  return startMembershipd({ dataDir: tempDir("unibus-md-"), args: opts.args });
}

export interface ExitResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs bin/membershipd on `dataDir` until it exits by itself (it is killed after `timeoutMs`). */
export async function runMembershipdToExit(
  dataDir: string,
  extra: string[] = [],
  timeoutMs = 30_000,
): Promise<ExitResult> {
  const args = [
    "--data-dir",
    dataDir,
    "--nats-port",
    String(await freePort()),
    "--http-port",
    String(await freePort()),
    ...extra,
  ];
  const started = Date.now();
  const proc = spawn(join(ROOT, "bin/membershipd"), args, { env: process.env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  proc.stdout!.on("data", (d) => (stdout += d));
  proc.stderr!.on("data", (d) => (stderr += d));
  const timer = setTimeout(() => {
    for (const c of childrenOf(proc.pid!)) killTree(c);
    proc.kill("SIGKILL");
  }, timeoutMs);
  const [code, signal] = await new Promise<[number | null, string | null]>((r) =>
    proc.once("exit", (c, s) => r([c, s])),
  );
  clearTimeout(timer);
  return { code, signal, stdout, stderr, ms: Date.now() - started };
}

function killTree(pid: number): void {
  for (const c of childrenOf(pid)) killTree(c);
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // gone
  }
}

/**
 * kill -9 of membershipd itself (the node process behind the launcher) and of the launcher: its
 * nats-server is left orphaned, as after a real crash.
 */
export async function crashMembershipd(md: MembershipdHandle): Promise<number> {
  const inner = membershipdPid(md.dataDir);
  process.kill(inner, "SIGKILL");
  await md.kill9();
  await waitUntil(`membershipd ${inner} to die`, () => !isAlive(inner), 5000);
  return inner;
}

/**
 * SIGTERM to membershipd itself and its exit code. Not through the launcher: bin/membershipd runs
 * membershipd under tsx, which SIGKILLs its child when the child does not acknowledge a relayed
 * signal within ~60 ms (a bug with its own test in membershipd.test.ts).
 */
export async function stopMembershipd(md: MembershipdHandle): Promise<number | null> {
  if (md.proc.exitCode !== null || md.proc.signalCode !== null) return md.proc.exitCode;
  const exited = new Promise<number | null>((r) => md.proc.once("exit", (c) => r(c)));
  process.kill(membershipdPid(md.dataDir), "SIGTERM");
  return await exited;
}

/** For `after`: stop a membershipd started by a test and anything left for its data dir, then remove the dir. */
export async function cleanupMembershipd(
  md: MembershipdHandle | undefined,
  dataDir = md?.dataDir,
  removeDir = true,
): Promise<void> {
  if (md && md.proc.exitCode === null && md.proc.signalCode === null) {
    const inner = childrenOf(md.proc.pid!);
    const timer = setTimeout(() => {
      for (const c of inner) killTree(c);
      md.proc.kill("SIGKILL");
    }, 20_000);
    await stopMembershipd(md).catch(() => md.stop());
    clearTimeout(timer);
  }
  if (!dataDir) return;
  for (const pid of natsServersFor(dataDir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  if (removeDir) rmSync(dataDir, { recursive: true, force: true });
}

export async function getJson(
  url: string,
  timeoutMs = 5000,
): Promise<{ status: number; body: any; ms: number; contentType: string | null }> {
  const started = performance.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  const ms = performance.now() - started;
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: returned as text
  }
  return { status: res.status, body, ms, contentType: res.headers.get("content-type") };
}

/** `unibus-agent run` as a real process, its output kept. */
export interface AgentDaemon {
  proc: ChildProcess;
  out(): string;
  exited: Promise<number | null>;
}

export function startAgentDaemon(dir: string, env: Record<string, string> = {}): AgentDaemon {
  const proc = spawn(join(ROOT, "bin/unibus-agent"), ["--data-dir", dir, "run"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  return { proc, out: () => out, exited: new Promise((r) => proc.once("exit", (c) => r(c))) };
}

/** SIGTERM, up to 10 s for the agent to stop its services, then SIGKILL. */
export async function stopAgentDaemon(agent: AgentDaemon | undefined): Promise<void> {
  if (!agent || agent.proc.exitCode !== null) return;
  agent.proc.kill("SIGTERM");
  await Promise.race([agent.exited, sleep(10_000)]);
  agent.proc.kill("SIGKILL");
}
