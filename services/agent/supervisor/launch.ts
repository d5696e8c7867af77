// Spawns one invocation and follows it: its output as lines, the pid of the service itself, its
// exit. The process gets its own session, so a signal for the agent's terminal never reaches it,
// and so its process group can be signalled as a whole.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { LineSplitter } from "./lines.ts";
import type { ExitInfo } from "./restart-policy.ts";
import { serviceExit, STATUS_FD, type Invocation } from "./sandbox.ts";

export type Stream = "stdout" | "stderr";

export type Ended = ExitInfo & { spawnError: string | null };

export interface Launched {
  /** The service's own pid once its process runs; null when it ended before that. */
  readonly ready: Promise<number | null>;
  /** Its exit, once its output has been read. */
  readonly ended: Promise<Ended>;
  /** Signals the service's process group; nothing once it has exited. */
  signal(sig: NodeJS.Signals): void;
}

// Output a process left to a descendant that escaped its group is not waited for longer than this.
const DRAIN_MS = 2000;

export function launch(inv: Invocation, onLine: (stream: Stream, line: string) => void): Launched {
  // The helper starts with its fixed environment; the service's own reaches it through bwrap's --args pipe or env -i.
  const child = spawn(inv.file, inv.args, { cwd: inv.cwd, env: inv.spawnEnv, detached: true, stdio: stdioFor(inv) });
  for (const input of inv.inputs) writeInput(child, input.fd, input.data);
  let exited = false;
  // Sandboxed, the group is the one bwrap's init leads (--new-session); until it is known, bwrap itself.
  let group: number | null = inv.sandboxed ? null : (child.pid ?? null);
  const ended = followExit(child, inv.sandboxed, onLine, () => (exited = true));
  const sandboxReady = async () => {
    const init = await sandboxInit(child, ended);
    if (init === null) return null;
    group = init;
    return serviceUnder(init, () => exited);
  };
  const ready = inv.sandboxed ? sandboxReady() : spawned(child, ended);
  return {
    ready,
    ended,
    signal(sig) {
      // After the exit the numbers may already name someone else's process.
      if (exited) return;
      const target = group !== null ? -group : child.pid;
      if (target === undefined) return;
      try {
        process.kill(target, sig);
      } catch {
        // already gone
      }
    },
  };
}

/** stdin closed; stdout, stderr and bwrap's status fd read; each input a pipe we write. */
function stdioFor(inv: Invocation): ("ignore" | "pipe")[] {
  const fds = [STATUS_FD, ...inv.inputs.map((i) => i.fd)];
  const stdio: ("ignore" | "pipe")[] = ["ignore", "pipe", "pipe"];
  for (let fd = 3; fd <= Math.max(...fds); fd++)
    stdio.push((fd === STATUS_FD && inv.sandboxed) || inv.inputs.some((i) => i.fd === fd) ? "pipe" : "ignore");
  return stdio;
}

function writeInput(child: ChildProcess, fd: number, data: Buffer): void {
  const pipe = child.stdio[fd] as Writable | null;
  if (!pipe) return;
  // A helper that exits before reading it all is reported by its exit, not by an EPIPE here.
  pipe.on("error", () => {});
  pipe.end(data);
}

function spawned(child: ChildProcess, ended: Promise<Ended>): Promise<number | null> {
  return new Promise((resolve) => {
    child.once("spawn", () => resolve(child.pid!));
    void ended.then(() => resolve(null));
  });
}

function followExit(
  child: ChildProcess,
  sandboxed: boolean,
  onLine: (stream: Stream, line: string) => void,
  markExited: () => void,
): Promise<Ended> {
  const out = new LineSplitter((l) => onLine("stdout", l));
  const err = new LineSplitter((l) => onLine("stderr", l));
  child.stdout!.on("data", (c: Buffer) => out.push(c));
  child.stderr!.on("data", (c: Buffer) => err.push(c));
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  return new Promise<Ended>((resolve) => {
    child.once("error", (e) => {
      if (child.pid !== undefined) return;
      markExited();
      resolve({ code: null, signal: null, spawnError: e.message });
    });
    child.once("exit", (code, signal) => {
      markExited();
      // Unsandboxed, what the service left in its group goes with it (bwrap's pid namespace does this inside).
      if (!sandboxed) killGroup(child.pid!);
      void drained(child, closed).then(() => {
        out.flush();
        err.flush();
        resolve({ ...serviceExit(sandboxed, code, signal), spawnError: null });
      });
    });
  });
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // nobody left in it
  }
}

async function drained(child: ChildProcess, closed: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, DRAIN_MS)));
  await Promise.race([closed, late]);
  clearTimeout(timer);
  child.stdout!.destroy();
  child.stderr!.destroy();
}

/**
 * The pid of the sandbox's init, from bwrap's status fd. It must be bwrap's own child: the
 * service cannot reach that fd, but a wrong number here would be signalled as a process group.
 */
function sandboxInit(child: ChildProcess, ended: Promise<Ended>): Promise<number | null> {
  return new Promise((resolve) => {
    let text = "";
    const status = child.stdio[STATUS_FD] as Readable;
    status.on("data", (d: Buffer) => {
      if (text.length > 64 * 1024) return;
      text += d.toString("utf8");
      const m = /"child-pid":\s*(\d+)/.exec(text);
      if (m) resolve(parentOf(Number(m[1])) === child.pid ? Number(m[1]) : null);
    });
    void ended.then(() => resolve(null));
  });
}

function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return null;
  }
}

/**
 * The service is the init's only child, forked once the sandbox is set up: waited for by polling
 * /proc. Where the kernel offers no children file, the init's pid stands in for it.
 */
async function serviceUnder(init: number, exited: () => boolean): Promise<number | null> {
  const file = `/proc/${init}/task/${init}/children`;
  for (let wait = 1; !exited(); wait = Math.min(wait * 2, 20)) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      return existsSync(`/proc/${init}`) && !exited() ? init : null;
    }
    const first = Number(text.trim().split(/\s+/)[0]);
    if (first > 0) return first;
    await new Promise((r) => setTimeout(r, wait));
  }
  return null;
}
