// The agent's NATS connection, and the requests that go through it: null until the first connect
// succeeds, and never null again (nats.js reconnects it forever). What needs it before then (the
// vault, the guardian's checks, the trust list) is refused with "not connected".
import type { NatsConnection } from "@nats-io/transport-node";
import { Reply, nodeActorId, type NodeConfig } from "../../../schemas/mod.ts";
import { connectNats } from "../../bus/mod.ts";
import { inboxPrefix, signCommand, type Signer } from "../../core/mod.ts";
import { fetchTrust } from "../commands/mod.ts";
import type { NodeStore } from "../node-store.ts";
import type { Backoff } from "./backoff.ts";

const REQUEST_TIMEOUT_MS = 10_000;

export class AgentConnection {
  private nc: NatsConnection | null = null;

  constructor(private readonly node: string, private readonly signer: Signer) {}

  get current(): NatsConnection | null {
    return this.nc;
  }

  /**
   * Connects with the node's own credentials and pinned CA; waits for the first connect, then
   * reconnects forever after `backoff`.
   */
  async open(config: NodeConfig, store: NodeStore, backoff: Backoff): Promise<NatsConnection> {
    this.nc = await connectNats({
      servers: config.urls, name: `unibus-agent ${this.node}`, forever: true, creds: store.creds(), caFile: store.path("ca"),
      inboxPrefix: inboxPrefix(this.signer.publicKey), waitOnFirstConnect: true, reconnectDelay: () => backoff.next(),
    });
    return this.nc;
  }

  /** Signs `action` as this node and asks membershipd; a timeout or no responders rejects. */
  async ask(action: string, args: Record<string, unknown>): Promise<Reply> {
    const nc = this.connected();
    const cmd = signCommand({ action, args, actor: { id: nodeActorId(this.node), key: this.signer.publicKey } }, this.signer);
    const msg = await nc.request(`unibus.cmd.membership.${action}`, JSON.stringify(cmd), { timeout: REQUEST_TIMEOUT_MS });
    return Reply.parse(msg.json());
  }

  /** A raw request/reply (the guardians' subjects); rejects on timeout or no responders. */
  async request(subject: string, payload: string, timeoutMs: number): Promise<unknown> {
    return (await this.connected().request(subject, payload, { timeout: timeoutMs })).json();
  }

  /** The admins and updaters this node obeys, from membershipd (`node.trust`). */
  async fetchTrust(): ReturnType<typeof fetchTrust> {
    return await fetchTrust(this.connected(), this.node, this.signer, REQUEST_TIMEOUT_MS);
  }

  private connected(): NatsConnection {
    if (!this.nc) throw new Error("not connected");
    return this.nc;
  }
}
