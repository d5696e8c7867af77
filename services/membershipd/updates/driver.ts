// The rollout driver, in membershipd: while this membershipd holds the driver lease
// (driver-lease.ts: one driver in a cluster at a time), for each running rollout it asks the pure decider to
// advance (start the next batch, pause on failures, complete), sends each node of the started
// batches a signed `update` (the release's manifest and signature; signed with the driver's own
// key, which agents obey for `update` alone and membershipd for nothing), and hands each outcome back as
// FinishNode. Everything it knows is in the rollout's events, so a membershipd restarted
// mid-rollout finds the running rollouts in UNIBUS_rollouts and carries on: nodes that were sent
// the update and have no outcome get it again (the agent answers a version it already committed
// with `already-active`, and one still on trial with E_CONFLICT, which is retried).
import type { NatsConnection } from "@nats-io/transport-node";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { nodeCommandSubject, Reply, type RolloutRecord } from "../../../schemas/mod.ts";
import {
  isDomainError,
  nodesInFlight,
  releaseAggregate,
  releaseId,
  rolloutAggregate,
  signCommand,
  type ReleaseState,
  type RolloutState,
  type Signer,
  backoffMs,
  systemInputs,
} from "../../core/mod.ts";
import type { AggregateStore } from "../../bus/mod.ts";
import { listBucket } from "../list-bucket.ts";
import { awaitBootOutcome, nodeReleaseSeq, type NodeOutcome } from "./boot-outcome.ts";
import type { AppDeployer } from "../apps/deploy.ts";

/**
 * Answers that say "not now" rather than "failed": the node is sent the update again later. An
 * agent whose trust list does not know the driver's key yet fetches it again on that refusal.
 */
const RETRYABLE = new Set(["E_CONFLICT", "E_UNAVAILABLE", "E_INTERRUPTED", "E_CLOCK_SKEW", "E_UNKNOWN_ACTOR"]);

export interface DriverOptions {
  nc: NatsConnection;
  aggregates: AggregateStore;
  jsm: JetStreamManager;
  rollouts: KV;
  /** Whether this membershipd holds the driver lease now: nothing is advanced or sent otherwise. */
  leader(): boolean;
  /** Signs the updates: the driver's own identity (not an admin; agents obey it for `update` alone). */
  driverKey: Signer;
  driverId: string;
  /** membershipd's own key: the actor of the events the driver appends. */
  serviceKey: string;
  log(line: string): void;
  /** How long one node's update may take (download, install, every try): default 10 min. */
  updateTimeoutMs?: number;
  /** Wait before sending a node the update again after a retryable answer (doubling, at most 10 s). */
  retryMs?: number;
  /**
   * Give a node up (RolloutNodeFinished, not ok, E_UNAVAILABLE) once it has given no usable answer
   * for this long (default 5 min): long enough for agents to reconnect after a control-plane restart.
   */
  giveUpMs?: number;
  /** How often running rollouts are looked for (a missed kick, a restart). */
  scanMs?: number;
  /** UNIBUS_node_releases: where a self-update's commit or rollback shows, after its `switched` reply. */
  nodeReleases?: KV;
  /**
   * How long a node that switched to new agent code may take to commit it or be rolled back (default
   * 20 min: three tries of up to the release's health deadline, 120 s by default, plus restarts).
   */
  bootWaitMs?: number;
  /** How often the node's release record is read during that wait. */
  bootPollMs?: number;
  /** App rollouts: each node's desired state written and its outcome awaited (services/membershipd/apps). */
  apps?: AppDeployer;
}

export class RolloutDriver {
  private readonly running = new Map<string, { dirty: boolean }>();
  private readonly sending = new Set<string>();
  private readonly retries = new Map<string, { n: number; since: number }>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(private readonly o: DriverOptions) {}

  start(): void {
    void this.scan();
    this.timer = setInterval(() => void this.scan(), this.o.scanMs ?? 2000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    // In-flight requests are left to time out; their outcome is learned again after a restart.
  }

  /** Running and paused rollouts (a paused one still collects the outcomes of nodes already sent). */
  async scan(): Promise<void> {
    if (this.stopped || !this.o.leader()) return;
    try {
      for (const r of await listBucket<RolloutRecord>(this.o.jsm, this.o.rollouts, "UNIBUS_rollouts"))
        if (r.state === "running" || r.state === "paused") this.kick(r.rollout);
    } catch (err) {
      this.o.log(`rollouts: could not scan: ${(err as Error).message}`);
    }
  }

  /** Drives one rollout now (a start, a resume, an outcome); a membershipd without the lease leaves it to the holder's scan. */
  kick(rollout: string): void {
    if (this.stopped || !this.o.leader()) return;
    const r = this.running.get(rollout);
    if (r) return void (r.dirty = true);
    const entry = { dirty: false };
    this.running.set(rollout, entry);
    void (async () => {
      try {
        do {
          entry.dirty = false;
          await this.step(rollout);
        } while (entry.dirty && !this.stopped);
      } catch (err) {
        this.o.log(`rollout ${rollout}: ${(err as Error).stack ?? err}`);
      } finally {
        this.running.delete(rollout);
      }
    })();
  }

  private meta(id: string) {
    return { actor: { id: "membershipd", key: this.o.serviceKey }, commandId: id };
  }

  private async step(rollout: string): Promise<void> {
    if (!this.o.leader()) return;
    const adv = await this.o.aggregates.execute(
      rolloutAggregate,
      rollout,
      { type: "AdvanceRollout" },
      this.meta(`advance-${rollout}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`),
    );
    if (isDomainError(adv)) return this.o.log(`rollout ${rollout}: ${adv.message}`);
    const state = (await this.o.aggregates.load(rolloutAggregate, rollout)).state;
    if (!state.exists || state.phase === "completed" || state.phase === "aborted") return;
    const pending = nodesInFlight(state).filter((n) => !this.sending.has(`${rollout}/${n}`));
    if (pending.length === 0) return;
    const send = await this.sender(rollout, state);
    if (!send) return;
    for (const node of pending) {
      const key = `${rollout}/${node}`;
      this.sending.add(key);
      const p = send(node).finally(() => {
        this.sending.delete(key);
        this.inflight.delete(p);
      });
      this.inflight.add(p);
    }
  }

  /** How each node of this rollout is sent its change: a release's update, or an app's desired state. */
  private async sender(
    rollout: string,
    state: Extract<RolloutState, { exists: true }>,
  ): Promise<((node: string) => Promise<void>) | null> {
    if (state.target === "app") {
      if (!this.o.apps) return (this.o.log(`rollout ${rollout}: this membershipd serves no apps`), null);
      return (node) => this.sendApp(rollout, node, state.name, state.version);
    }
    const release = (await this.o.aggregates.load(releaseAggregate, releaseId(state.name, state.version))).state;
    if (!release.published)
      return (this.o.log(`rollout ${rollout}: release ${state.name} ${state.version} is gone`), null);
    return (node) => this.send(rollout, node, release);
  }

  private async sendApp(rollout: string, node: string, app: string, version: string): Promise<void> {
    if (!this.o.leader() || this.stopped) return;
    let outcome: NodeOutcome | null;
    try {
      outcome = await this.o.apps!.deploy({
        node,
        app,
        version,
        by: this.o.driverId,
        meta: this.meta(`deploy-${rollout}-${node}`),
        deadlineMs: this.o.updateTimeoutMs ?? 600_000,
        pollMs: this.o.bootPollMs ?? 1000,
        carryOn: () => this.o.leader() && !this.stopped,
      });
    } catch (err) {
      this.o.log(`rollout ${rollout}: ${node}: ${(err as Error).message}; it will be sent again`);
      await new Promise((res) => setTimeout(res, this.o.retryMs ?? 2000));
      this.sending.delete(`${rollout}/${node}`);
      return this.kick(rollout);
    }
    if (outcome === null || this.stopped) return;
    const r = await this.o.aggregates.execute(
      rolloutAggregate,
      rollout,
      { type: "FinishNode", node, ...outcome },
      this.meta(`finish-${rollout}-${node}`),
    );
    if (isDomainError(r)) this.o.log(`rollout ${rollout}: recording ${node}: ${r.message}`);
    this.kick(rollout);
  }

  private async send(
    rollout: string,
    node: string,
    release: Extract<ReleaseState, { published: true }>,
  ): Promise<void> {
    const cmd = signCommand(
      {
        action: "update",
        args: { node, manifest: release.manifest, signature: release.signature },
        actor: { id: this.o.driverId, key: this.o.driverKey.publicKey },
      },
      this.o.driverKey,
      systemInputs,
    );
    let outcome: NodeOutcome | "retry" | null;
    // Checked right before the send: the lease may have lapsed while the batch was being read.
    if (!this.o.leader() || this.stopped) return;
    const sentAtSeq = this.o.nodeReleases ? await nodeReleaseSeq(this.o.nodeReleases, node, release.manifest.name) : 0;
    try {
      const msg = await this.o.nc.request(nodeCommandSubject(node, "update"), JSON.stringify(cmd), {
        timeout: this.o.updateTimeoutMs ?? 600_000,
      });
      const reply = Reply.parse(msg.json());
      outcome = reply.ok
        ? { ok: true, code: null, reason: null }
        : RETRYABLE.has(reply.error.code)
          ? "retry"
          : { ok: false, code: reply.error.code, reason: reply.error.message.slice(0, 500) };
      // New agent code: the switch is not the outcome; the commit or the boot step's rollback is.
      if (reply.ok && (reply.result as { outcome?: string } | null)?.outcome === "switched" && this.o.nodeReleases) {
        outcome = await awaitBootOutcome({
          nodeReleases: this.o.nodeReleases,
          node,
          release: release.manifest.name,
          version: release.manifest.version,
          sentAtSeq,
          deadlineMs: this.o.bootWaitMs ?? 20 * 60_000,
          pollMs: this.o.bootPollMs ?? 2000,
          carryOn: () => this.o.leader() && !this.stopped,
        });
        // Stopped or no longer the driver: the next holder sends it again (E_CONFLICT while on trial, already-active once committed).
        if (outcome === null) return;
      }
    } catch (err) {
      outcome = "retry";
      this.o.log(
        `rollout ${rollout}: ${node} did not answer the update (${(err as Error).message}); it will be sent again`,
      );
    }
    if (this.stopped) return;
    const key = `${rollout}/${node}`;
    if (outcome === "retry") {
      const r = this.retries.get(key) ?? { n: 0, since: Date.now() };
      r.n++;
      this.retries.set(key, r);
      if (Date.now() - r.since < (this.o.giveUpMs ?? 300_000)) {
        await new Promise((res) =>
          setTimeout(res, backoffMs(r.n - 1, { minMs: this.o.retryMs ?? 2000, maxMs: 10_000 })),
        );
        this.sending.delete(key);
        return this.kick(rollout);
      }
      outcome = {
        ok: false,
        code: "E_UNAVAILABLE",
        reason: `no usable answer for ${Math.round((Date.now() - r.since) / 1000)} s (${r.n} tries)`,
      };
    }
    this.retries.delete(key);
    const r = await this.o.aggregates.execute(
      rolloutAggregate,
      rollout,
      { type: "FinishNode", node, ...outcome },
      this.meta(`finish-${rollout}-${node}-${cmd.id}`),
    );
    if (isDomainError(r)) this.o.log(`rollout ${rollout}: recording ${node}: ${r.message}`);
    this.kick(rollout);
  }
}
