// Helpers for this folder's tests: service configs with short timings, a recorder for the
// supervisor's events and lines, polling with a deadline, and temp dirs that go away.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ServiceConfig, type ServiceConfigInput } from "../../../schemas/mod.ts";
import { SupervisorEvent } from "./events.ts";
import { serviceIdentity } from "./identity.ts";
import { Supervisor, type SupervisorOptions } from "./supervisor.ts";

/** A service running `script` under /bin/sh (the service's own command line), with test timings. */
export function shService(name: string, script: string, more: Partial<ServiceConfigInput> = {}): ServiceConfig {
  return ServiceConfig.parse({
    name,
    command: "/bin/sh",
    args: ["-c", script],
    stop_grace_ms: 3000,
    ...more,
    restart: { backoff_ms: 20, max_backoff_ms: 200, ...more.restart },
  });
}

export interface Line {
  service: string;
  stream: "stdout" | "stderr";
  line: string;
}

export class Recorder {
  readonly events: SupervisorEvent[] = [];
  readonly lines: Line[] = [];
  /** Event types and "line", in the order they arrived. */
  readonly timeline: string[] = [];
  readonly options: SupervisorOptions = {
    onEvent: (e) => {
      assert.ok(SupervisorEvent.safeParse(e).success, `event does not match its schema: ${JSON.stringify(e)}`);
      this.events.push(e);
      this.timeline.push(e.type);
    },
    onLine: (service, stream, line) => {
      this.lines.push({ service, stream, line });
      this.timeline.push("line");
    },
  };

  of<T extends SupervisorEvent["type"]>(type: T, service?: string): Extract<SupervisorEvent, { type: T }>[] {
    return this.events.filter((e) => e.type === type && (service === undefined || e.service === service)) as Extract<
      SupervisorEvent,
      { type: T }
    >[];
  }

  out(service: string, stream: "stdout" | "stderr" = "stdout"): string[] {
    return this.lines.filter((l) => l.service === service && l.stream === stream).map((l) => l.line);
  }

  /** Everything a service printed as `key=value` lines. */
  facts(service: string): Record<string, string> {
    return Object.fromEntries(
      this.out(service)
        .filter((l) => l.includes("="))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
  }
}

export async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A live process (a zombie counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

/** Live processes running as one of `uids`. */
export function processesOf(uids: ReadonlySet<number>): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => {
      try {
        const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
        return uids.has(uid) && isAlive(pid);
      } catch {
        return false;
      }
    });
}

/**
 * Supervisors and temp dirs made by a test file. `cleanup` stops every supervisor, checks that
 * no process of their services' UIDs is left, and removes the dirs.
 */
export class Fixture {
  private readonly supervisors: Supervisor[] = [];
  private readonly dirs: string[] = [];
  private readonly uids = new Set<number>();

  /** The test's temp dirs stand for roots an operator permits: writable paths live in them. */
  readonly writableRoots = { serviceData: null, permitted: this.dirs };

  supervisor(configs: ServiceConfig[], options: SupervisorOptions = {}): Supervisor {
    const made = Supervisor.create(configs, { writableRoots: this.writableRoots, ...options });
    assert.ok(made.ok, made.ok ? "" : made.errors.map((e) => e.message).join("; "));
    this.supervisors.push(made.result);
    for (const c of configs) this.uids.add(serviceIdentity(c).uid);
    return made.result;
  }

  tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), "unibus-supervisor-"));
    this.dirs.push(dir);
    return dir;
  }

  async cleanup(): Promise<void> {
    for (const s of this.supervisors) await s.stopAll();
    try {
      await waitFor("the services' processes to be gone", () => processesOf(this.uids).length === 0, 5000);
    } finally {
      for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
    }
  }
}
