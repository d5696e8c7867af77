// Test helpers for the command endpoint: signed envelopes with any field chosen, and a fake `ops`
// that records what it was asked (ops are ours, not NATS: faking them is fine).
import { createServer } from "@nats-io/nkeys";
import type { HealthResult, LeaveResult, NodeStatusResult, ServiceStatus } from "../../../schemas/mod.ts";
import { newUserSeed, signerFromSeed, type Signer } from "../../core/mod.ts";
import type { LogsRequest, NodeOps, OpResult } from "./ops.ts";

export { signed, resign, type Draft } from "../../../test/signed-commands.ts";

export function newUser(): Signer {
  return signerFromSeed(newUserSeed());
}

/** A node's key (N…), as `unibus-agent join` makes it. */
export function newNode(): Signer {
  return signerFromSeed(createServer().getSeed());
}

export function serviceStatus(name: string, state: ServiceStatus["state"] = "running"): ServiceStatus {
  return {
    name,
    state,
    profile: "none",
    pid: state === "running" ? 4242 : null,
    uptime_ms: 5,
    restarts: 0,
    last_exit: null,
    problem: null,
  };
}

export interface FakeOps extends NodeOps {
  /** "<action> <service>" per call, in call order. */
  calls: string[];
  /** While set, write ops wait for it (to hold commands in flight). */
  gate: Promise<void> | null;
  /** Per call "<action> <service>": a result to return instead of the default. */
  results: Map<string, OpResult<unknown>>;
  /** Per call "<action> <service>": throw this. */
  throws: Map<string, Error>;
  running: number;
  maxRunning: number;
}

export function fakeOps(node: string): FakeOps {
  const ops: FakeOps = {
    calls: [],
    gate: null,
    results: new Map(),
    throws: new Map(),
    running: 0,
    maxRunning: 0,
    status: (): NodeStatusResult => {
      ops.calls.push("status");
      return {
        node,
        agent: {
          version: "0.1.0",
          started_at: "2025-01-01T00:00:00.000Z",
          sandbox: "none",
          identity: "own-uid",
          bwrap_version: null,
          sandbox_problem: null,
          reports_pending: 0,
          reports_dropped: 0,
          logs_dropped: 0,
        },
        services: [serviceStatus("web")],
      };
    },
    start: (s) => write("start", s, () => serviceStatus(s)),
    stop: (s) => write("stop", s, () => serviceStatus(s, "stopped")),
    restart: (s) => write("restart", s, () => serviceStatus(s)),
    execCheck: (s) =>
      write<HealthResult>("exec-check", s, () => ({ ok: true, code: 0, output: "fine", ms: 3, timed_out: false })),
    logs: (a: LogsRequest) => {
      ops.calls.push(`logs ${a.service} ${a.lines}${a.since ? ` ${a.since}` : ""}`);
      return (
        (ops.results.get(`logs ${a.service}`) as OpResult<never>) ?? {
          ok: true,
          result: { source: "buffer", service: a.service, lines: [], dropped: 0 },
        }
      );
    },
    leave: async (): Promise<LeaveResult> => {
      const r = await write<LeaveResult>("leave", "", () => ({ node, stopped: ["web"] }));
      if (!r.ok) throw new Error(r.error.message);
      return r.result;
    },
    update: (attempt: string) => write("update", "", () => ({ outcome: "committed", attempt })),
    appsSync: () => write("apps.sync", "", () => ({ generation: 0, queued: false })),
  };
  async function write<T>(action: string, service: string, make: () => T): Promise<OpResult<T>> {
    const key = service ? `${action} ${service}` : action;
    ops.calls.push(key);
    ops.running++;
    ops.maxRunning = Math.max(ops.maxRunning, ops.running);
    try {
      if (ops.gate) await ops.gate;
      const thrown = ops.throws.get(key);
      if (thrown) throw thrown;
      return (ops.results.get(key) as OpResult<T>) ?? { ok: true, result: make() };
    } finally {
      ops.running--;
    }
  }
  return ops;
}

/** A promise and its release, for holding fake ops in flight. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}
