// Stand-ins for unibus-agent on a real NATS server: one subscription per node on
// `unibus.cmd.node.<node>.*`, answering the wire contract of schemas/node-agent.ts with canned
// replies. Each checks what a real agent must: the envelope parses, its action is the subject's,
// args.node is its own name (a command signed for another node is not replayed here), the
// signature verifies and the signer is the expected operator. What it refuses is recorded in
// `violations`, so a test can assert the CLI never sent anything a real agent would reject.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { CommandEnvelope, NodeActionArgs, isNodeAction } from "../schemas/mod.ts";
import { verifyCommandSignature } from "../services/core/mod.ts";

export interface FakeService {
  state: string;
  pid: number | null;
  restarts: number;
  /** What `exec-check` answers for this service. */
  check?: { ok: boolean; code: number | null; output: string };
  /** `start`/`restart` leave it in this state (e.g. "crash-loop") instead of "running". */
  startsAs?: string;
}

export interface FakeAgentOptions {
  services?: Record<string, Partial<FakeService>>;
  /** Never answers: a hung agent. */
  stalled?: boolean;
  /** Answers after this long. */
  delayMs?: number;
}

export interface Received {
  node: string;
  action: string;
  args: Record<string, unknown>;
  at: number;
}

const AGENT_INFO = {
  version: "0.1.0-fake",
  started_at: new Date(Date.now() - 3_723_000).toISOString(),
  sandbox: "bwrap",
  identity: "own-uid",
  bwrap_version: "0.8.0",
  sandbox_problem: null,
  reports_pending: 0,
  reports_dropped: 0,
  logs_dropped: 0,
};

export class FakeFleet {
  readonly received: Received[] = [];
  readonly violations: string[] = [];
  inFlight = 0;
  peakInFlight = 0;
  private readonly subs = new Map<string, Subscription>();
  private readonly services = new Map<string, Map<string, FakeService>>();
  private readonly options = new Map<string, FakeAgentOptions>();
  private nextPid = 4000;

  constructor(
    private readonly nc: NatsConnection,
    private readonly operatorKey: string,
  ) {}

  add(node: string, o: FakeAgentOptions = {}): void {
    const svcs = new Map<string, FakeService>();
    for (const [name, s] of Object.entries(o.services ?? { api: {} })) {
      svcs.set(name, { state: "running", pid: this.nextPid++, restarts: 0, ...s });
    }
    this.services.set(node, svcs);
    this.options.set(node, o);
    const sub = this.nc.subscribe(`unibus.cmd.node.${node}.*`, {
      callback: (err, msg) => {
        if (err) return;
        void this.handle(node, msg.subject, msg.data).then((reply) => {
          if (reply !== null) msg.respond(JSON.stringify(reply));
        });
      },
    });
    this.subs.set(node, sub);
  }

  /** The agent goes away (its subscription ends): its node then has no responders. */
  remove(node: string): void {
    this.subs.get(node)?.unsubscribe();
    this.subs.delete(node);
  }

  setOptions(node: string, o: Partial<FakeAgentOptions>): void {
    this.options.set(node, { ...this.options.get(node), ...o });
  }

  service(node: string, name: string): FakeService | undefined {
    return this.services.get(node)?.get(name);
  }

  /** Everything received for `action`, by node. */
  countsOf(action: string): Map<string, number> {
    const m = new Map<string, number>();
    for (const r of this.received) if (r.action === action) m.set(r.node, (m.get(r.node) ?? 0) + 1);
    return m;
  }

  async flush(): Promise<void> {
    await this.nc.flush();
  }

  private refuse(code: string, message: string, record = true) {
    if (record) this.violations.push(`${code}: ${message}`);
    return { ok: false, error: { code, message } };
  }

  private async handle(node: string, subject: string, data: Uint8Array): Promise<unknown | null> {
    const action = subject.split(".").at(-1)!;
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(data));
    } catch {
      return this.refuse("E_BAD_JSON", `${node}: not JSON`);
    }
    const env = CommandEnvelope.safeParse(body);
    if (!env.success) return this.refuse("E_BAD_REQUEST", `${node}: not a command envelope`);
    const cmd = env.data;
    if (cmd.action !== action || !isNodeAction(action))
      return this.refuse("E_BAD_REQUEST", `${node}: envelope action ${cmd.action} on subject ${subject}`);
    if (cmd.args.node !== node)
      return this.refuse("E_WRONG_NODE", `${node}: the command was signed for ${String(cmd.args.node)}`);
    if (!verifyCommandSignature(cmd)) return this.refuse("E_BAD_SIGNATURE", `${node}: the signature does not verify`);
    if (cmd.actor.key !== this.operatorKey)
      return this.refuse("E_FORBIDDEN", `${node}: ${cmd.actor.key} is not the operator`);
    const args = NodeActionArgs[action].safeParse(cmd.args);
    if (!args.success) return this.refuse("E_BAD_REQUEST", `${node}: bad args for ${action}`);
    this.received.push({ node, action, args: cmd.args, at: Date.now() });

    const o = this.options.get(node) ?? {};
    if (o.stalled) return null;
    this.peakInFlight = Math.max(this.peakInFlight, ++this.inFlight);
    try {
      if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
      return this.answer(node, action, cmd.args as { node: string; service?: string });
    } finally {
      this.inFlight--;
    }
  }

  private status(name: string, s: FakeService) {
    return {
      name,
      state: s.state,
      profile: "bwrap",
      pid: s.pid,
      uptime_ms: s.state === "running" ? 125_000 : null,
      restarts: s.restarts,
      last_exit: s.restarts > 0 ? { code: 1, signal: null, ts: new Date(Date.now() - 60_000).toISOString() } : null,
      problem: s.state === "crash-loop" ? { code: "E_SERVICE_START", message: "it exits as soon as it starts" } : null,
    };
  }

  private answer(node: string, action: string, args: { node: string; service?: string }): unknown {
    const svcs = this.services.get(node)!;
    if (action === "status")
      return { ok: true, result: { node, agent: AGENT_INFO, services: [...svcs].map(([n, s]) => this.status(n, s)) } };
    if (action === "leave") {
      for (const s of svcs.values()) Object.assign(s, { state: "stopped", pid: null });
      return { ok: true, result: { node, stopped: [...svcs.keys()] } };
    }
    const s = svcs.get(args.service!);
    if (!s) return this.refuse("E_SERVICE_UNKNOWN", `no declared service has the name ${args.service}`, false);
    switch (action) {
      case "start":
      case "restart":
        Object.assign(
          s,
          s.startsAs ? { state: s.startsAs, pid: null, restarts: 5 } : { state: "running", pid: this.nextPid++ },
        );
        return { ok: true, result: this.status(args.service!, s) };
      case "stop":
        Object.assign(s, { state: "stopped", pid: null });
        return { ok: true, result: this.status(args.service!, s) };
      case "exec-check": {
        if (!s.check) return this.refuse("E_NO_HEALTH_CHECK", `${args.service} declares no health check`, false);
        return { ok: true, result: { ...s.check, ms: 12, timed_out: false } };
      }
      default:
        return this.refuse("E_UNKNOWN_ACTION", `${action} is not answered by this fake`, false);
    }
  }

  async close(): Promise<void> {
    for (const sub of this.subs.values()) sub.unsubscribe();
    this.subs.clear();
  }
}
