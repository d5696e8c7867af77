// The in-process fleet the vault tests run: each node's data dir, its vault options and its
// running agent (started and stopped by name, its log lines kept with the node's name in front).
import { NodeStore } from "../services/agent/mod.ts";
import {
  startAgent,
  type AgentOptions,
  type AgentVaultOptions,
  type RunningAgent,
} from "../services/agent/run/agent.ts";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { lastEventOf, readEventMessages } from "../services/bus/mod.ts";

export interface VaultFleet {
  dirs: Map<string, string>;
  agents: Map<string, RunningAgent>;
  opts: Map<string, AgentVaultOptions>;
  logs: string[];
  start(node: string): Promise<RunningAgent>;
  stop(node: string): Promise<void>;
}

/** `extra`: more agent options for a node (e.g. its services dir). */
export function vaultFleet(extra: (node: string) => Partial<AgentOptions> = () => ({})): VaultFleet {
  const dirs = new Map<string, string>();
  const agents = new Map<string, RunningAgent>();
  const opts = new Map<string, AgentVaultOptions>();
  const logs: string[] = [];
  return {
    dirs,
    agents,
    opts,
    logs,
    async start(node) {
      const a = await startAgent({
        store: new NodeStore(dirs.get(node)!),
        log: (l) => logs.push(`${node}: ${l}`),
        vault: opts.get(node)!,
        ...extra(node),
      });
      agents.set(node, a);
      return a;
    },
    async stop(node) {
      await agents.get(node)?.stop();
      agents.delete(node);
    },
  };
}

/** Every event stored on `filter` so far, parsed, in stream order. */
export async function subjectEvents(
  nc: NatsConnection,
  jsm: JetStreamManager,
  filter: string,
): Promise<{ type: string; data: any }[]> {
  const out: { type: string; data: any }[] = [];
  const last = await lastEventOf(jsm, filter);
  if (!last) return out;
  for await (const m of readEventMessages(nc, jsm, { filter, untilSeq: last.seq }))
    out.push(JSON.parse(new TextDecoder().decode(m.data)));
  return out;
}
