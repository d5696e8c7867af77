// The agent's NATS connection, and the requests that go through it: null until the first connect
// succeeds, and never null again (nats.js reconnects it forever). What needs it before then (the
// vault, the guardian's checks, the trust list) is refused with "not connected". The creds file is
// read at each connect and reconnect: membershipd may hand back a JWT minted again with the node
// role's current grants (node.trust), which replaces the file's JWT before a reconnect with it; the
// CA file too: a CA rotation's bundle (node.trust's `tls_ca`) is trusted from the next connect on.
import { readFileSync } from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { Reply, nodeActorId, type HeldJwt, type NodeConfig, type TrustResult } from "../../../schemas/mod.ts";
import { connectNats, credsFor, parseCreds, replaceSecretFile } from "../../bus/mod.ts";
import {
  inboxPrefix,
  isDomainError,
  jwtGrants,
  signCommand,
  type DomainError,
  type Signer,
  systemInputs,
} from "../../core/mod.ts";
import { caBundleUpdate, caFingerprints } from "../ca-bundle.ts";
import { fetchTrust } from "../commands/mod.ts";
import type { NodeStore } from "../node-store.ts";
import type { Backoff } from "./backoff.ts";

const REQUEST_TIMEOUT_MS = 10_000;

export class AgentConnection {
  private nc: NatsConnection | null = null;
  private store: NodeStore | null = null;
  /** Fingerprints of the CAs in ca.pem, read at open and on each adopted bundle (status reports them). */
  private cas: string[] = [];

  constructor(
    private readonly node: string,
    private readonly signer: Signer,
    private readonly log: (line: string) => void = () => {},
  ) {}

  get trustedCas(): string[] {
    return this.cas;
  }

  get current(): NatsConnection | null {
    return this.nc;
  }

  /**
   * Connects with the node's own credentials and pinned CA; waits for the first connect, then
   * reconnects forever after `backoff`.
   */
  async open(config: NodeConfig, store: NodeStore, backoff: Backoff): Promise<NatsConnection> {
    this.store = store;
    this.cas = caFingerprints(readFileSync(store.path("ca"), "utf8"));
    this.nc = await connectNats({
      servers: config.urls,
      name: `unibus-agent ${this.node}`,
      forever: true,
      creds: () => store.creds(),
      caFile: store.path("ca"),
      inboxPrefix: inboxPrefix(this.signer.publicKey),
      waitOnFirstConnect: true,
      // Until the first connect nothing reports attempts ("reconnecting" statuses are read after
      // it), so each ask counts one there, as before; after it the runtime counts them (backoff.ts).
      reconnectDelay: () => (this.nc ? backoff.current() : backoff.next()),
    });
    return this.nc;
  }

  /** Signs `action` as this node and asks membershipd; a timeout or no responders rejects. */
  async ask(action: string, args: Record<string, unknown>): Promise<Reply> {
    const nc = this.connected();
    const cmd = signCommand(
      { action, args, actor: { id: nodeActorId(this.node), key: this.signer.publicKey } },
      this.signer,
      systemInputs,
    );
    const msg = await nc.request(`unibus.cmd.membership.${action}`, JSON.stringify(cmd), {
      timeout: REQUEST_TIMEOUT_MS,
    });
    return Reply.parse(msg.json());
  }

  /** A raw request/reply (the guardians' subjects); rejects on timeout or no responders. */
  async request(subject: string, payload: string, timeoutMs: number): Promise<unknown> {
    return (await this.connected().request(subject, payload, { timeout: timeoutMs })).json();
  }

  /** The admins and updaters this node obeys, from membershipd (`node.trust`). */
  async fetchTrust(): Promise<TrustResult | DomainError> {
    const nc = this.connected();
    const held = this.heldJwt();
    let result = await fetchTrust(nc, this.node, this.signer, REQUEST_TIMEOUT_MS, held);
    // A membershipd older than this agent knows no `credentials` in node.trust's args.
    if (held && isDomainError(result) && result.code === "E_BAD_REQUEST")
      result = await fetchTrust(nc, this.node, this.signer, REQUEST_TIMEOUT_MS);
    if (isDomainError(result)) return result;
    const { credentials, tls_ca, ...trust } = result;
    if (tls_ca) this.adoptCaBundle(tls_ca);
    if (credentials) this.adoptJwt(nc, credentials.jwt);
    return trust;
  }

  /**
   * The CAs membershipd says the servers' certificates chain to (a CA rotation's overlap): written
   * into ca.pem, which nats.js reads again at every reconnect, so the next connection trusts them.
   */
  private adoptCaBundle(offered: string): void {
    if (!this.store) return;
    const path = this.store.path("ca");
    const verdict = caBundleUpdate(readFileSync(path, "utf8"), offered);
    if ("keep" in verdict) return verdict.keep === "same" ? undefined : this.log(`tls: ${verdict.keep}`);
    try {
      replaceSecretFile(path, verdict.adopt);
    } catch (err) {
      return this.log(`tls: cannot write the new CA bundle (${(err as Error).message}); keeping the current one`);
    }
    this.cas = caFingerprints(verdict.adopt);
    this.log(`tls: the servers' CAs are now ${this.cas.join(", ")} (from membershipd)`);
  }

  /** What the creds file's JWT carries; undefined when it cannot be read (then nothing is asked). */
  private heldJwt(): HeldJwt | undefined {
    if (!this.store) return undefined;
    let bytes: Uint8Array | null = null;
    try {
      bytes = this.store.creds();
      return jwtGrants(parseCreds(bytes).jwt) ?? undefined;
    } catch {
      return undefined;
    } finally {
      bytes?.fill(0);
    }
  }

  /**
   * A JWT membershipd minted again for this node's key: it replaces the creds file's JWT and the
   * connection reconnects with it; the next node.trust (after the reconnect) tells membershipd,
   * which then revokes the older JWTs.
   */
  private adoptJwt(nc: NatsConnection, jwt: string): void {
    let subject: string;
    try {
      subject = parseCreds(credsFor(jwt, null)).publicKey;
    } catch (err) {
      return this.log(
        `credentials: membershipd's new JWT is malformed (${(err as Error).message}); keeping the current one`,
      );
    }
    if (subject !== this.signer.publicKey)
      return this.log("credentials: membershipd's new JWT is for another key; keeping the current one");
    try {
      this.store!.replaceJwt(jwt);
    } catch (err) {
      return this.log(`credentials: cannot write the new JWT (${(err as Error).message}); keeping the current one`);
    }
    this.log("credentials: membershipd minted this node's JWT again with the current grants; reconnecting with it");
    nc.reconnect().catch((err: unknown) =>
      this.log(`credentials: reconnect failed (${(err as Error)?.message ?? String(err)}); nats.js keeps trying`),
    );
  }

  private connected(): NatsConnection {
    if (!this.nc) throw new Error("not connected");
    return this.nc;
  }
}
