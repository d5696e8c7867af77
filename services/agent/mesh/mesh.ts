// Keeps the node's WireGuard interface in step with the fleet: on connect, on membershipd's signed
// nudge (a node joined, left or was revoked), and every 30 s besides, it reads its peers
// (node.mesh, every page) and applies the difference with `wg set`. A failed sync is tried again
// after a doubling wait (2 s to 30 s). What it reports (`status`: agent.mesh) comes from `wg show`,
// and with --mesh-state it is also written to a file after each sync, for membershipd's /healthz.
// A control-plane node's static peers (--mesh-static) stay whatever node.mesh lists.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  MAX_STATUS_PEERS,
  MESH_CHANGED_SUBJECT,
  MeshResult,
  type MeshInfo,
  type Reply,
  type WgPeer,
} from "../../../schemas/mod.ts";
import { backoffMs, checkControl, quietLog, zodMessage } from "../../core/mod.ts";
import { applyFirewall, applyPlan, bringUp, readInterface, run, type Run, type WgMode } from "./device.ts";
import { renderFirewall } from "./firewall.ts";
import { planPeers } from "./peer-plan.ts";
import { withStaticPeers } from "./static-peers.ts";
import { writeMeshState } from "./state-file.ts";

export type Ask = (action: string, args: Record<string, unknown>) => Promise<Reply>;

export interface MeshOptions {
  node: string;
  iface: string;
  keyFile: string;
  ask: Ask;
  /** The keys membershipd's nudges are signed with (the trust list's updaters). */
  nudgeKeys: () => string[];
  log: (line: string) => void;
  resyncMs?: number;
  /** How far apart agents act on one nudge: each waits up to this long first (300 ms). */
  nudgeSpreadMs?: number;
  run?: Run;
  /** Called with the public key the fleet holds for this node: a rotation's new key file is put in place. */
  keyRecorded?: (publicKey: string) => void;
  /** Filter the overlay with nftables (firewall.ts); `route` narrows the NATS route port too. */
  firewall?: { route?: { port: number; peers: readonly string[] } };
  /** The control plane's static peers (--mesh-static, static-peers.ts): kept whatever node.mesh lists. */
  staticPeers?: readonly WgPeer[];
  /** --mesh-state: `info()` written here after every sync, for membershipd's /healthz (state-file.ts). */
  stateFile?: string;
}

/** One consistent peer list: every page of node.mesh read at one fleet version. */
async function fetchMesh(ask: Ask, node: string): Promise<{ head: MeshResult; peers: WgPeer[] }> {
  for (let attempt = 0; ; attempt++) {
    const peers: WgPeer[] = [];
    let head: MeshResult | null = null;
    let after: string | undefined;
    for (;;) {
      const reply = await ask("node.mesh", { node, ...(after ? { after } : {}) });
      if (!reply.ok) throw new Error(`membershipd refused node.mesh: ${reply.error.code}: ${reply.error.message}`);
      const page = MeshResult.safeParse(reply.result);
      if (!page.success) throw new Error(`membershipd's node.mesh answer is malformed: ${zodMessage(page.error)}`);
      if (head && page.data.version !== head.version) break; // the fleet changed between pages
      head ??= page.data;
      peers.push(...page.data.peers);
      if (page.data.next === null) return { head, peers };
      after = page.data.next;
    }
    if (attempt >= 3) throw new Error("the fleet kept changing while its peers were read; trying again later");
  }
}

export class Mesh {
  private sub: Subscription | null = null;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private again = false;
  private failures = 0;
  private stopped = false;
  private mode: WgMode | null = null;
  private up: { overlayIp: string; bits: number; port: number } | null = null;
  private version: number | null = null;
  private lastSync: string | null = null;
  private problem: string | null = null;
  private names = new Map<string, string>();
  /** The rules last applied (to apply only a change), and why the last apply failed. */
  private rules: string | null = null;
  private firewallProblem: string | null = null;
  private stateProblem: string | null = null;
  private readonly run: Run;

  constructor(private readonly o: MeshOptions) {
    this.run = o.run ?? run;
  }

  /** Listens for nudges on `nc` and syncs now. */
  start(nc: NatsConnection): void {
    this.stopped = false;
    this.sub?.unsubscribe();
    const ignored = quietLog(this.o.log);
    this.sub = nc.subscribe(MESH_CHANGED_SUBJECT, {
      callback: (_err, msg) => {
        const c = checkControl(MESH_CHANGED_SUBJECT, msg.data, this.o.nudgeKeys(), Date.now());
        // Every agent hears the nudge at once: each waits a moment of its own first, so the fleet's
        // reads of node.mesh and its `wg` runs do not all land in the same instant.
        if (c.ok)
          setTimeout(() => this.stopped || void this.sync(), Math.random() * (this.o.nudgeSpreadMs ?? 300)).unref();
        else ignored(`mesh: ignored a message on ${MESH_CHANGED_SUBJECT} that membershipd did not sign (${c.reason})`);
      },
    });
    void this.sync();
  }

  stop(): void {
    this.stopped = true;
    this.sub?.unsubscribe();
    this.sub = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One sync at a time; a nudge during one queues one more after it. */
  sync(): Promise<void> {
    if (this.inFlight) {
      this.again = true;
      return this.inFlight;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const syncing = this.syncOnce().then(() => this.writeState());
    this.inFlight = syncing;
    void syncing.then(() => {
      this.inFlight = null;
      if (this.again) {
        this.again = false;
        void this.sync();
      } else this.schedule();
    });
    return syncing;
  }

  private schedule(): void {
    if (this.stopped) return;
    const wait =
      this.problem === null
        ? (this.o.resyncMs ?? 30_000)
        : backoffMs(this.failures - 1, { minMs: 2000, maxMs: 30_000, jitter: 1 });
    this.timer = setTimeout(() => void this.sync(), wait);
    this.timer.unref();
  }

  private async syncOnce(): Promise<void> {
    try {
      const fetched = await fetchMesh(this.o.ask, this.o.node);
      const head = fetched.head;
      const peers = withStaticPeers(fetched.peers, this.o.staticPeers ?? [], head);
      const bits = Number(head.overlay_cidr.split("/")[1]);
      const wanted = { overlayIp: head.overlay_ip, bits, port: head.listen_port };
      let made: WgMode | null = null;
      if (JSON.stringify(wanted) !== JSON.stringify(this.up)) {
        made = await bringUp(
          {
            iface: this.o.iface,
            keyFile: this.o.keyFile,
            overlayIp: head.overlay_ip,
            prefixBits: bits,
            listenPort: head.listen_port,
          },
          this.run,
        );
        this.mode = made ?? this.mode;
        this.up = wanted;
        this.o.log(
          `mesh: ${this.o.iface} up at ${head.overlay_ip}/${bits}, port ${head.listen_port}${made ? ` (${made})` : ""}`,
        );
      }
      this.o.keyRecorded?.(head.public_key);
      const dump = await this.withFleetKey(head.public_key);
      // Right after bring-up this node is the newcomer: it dials every peer (peer-plan.ts says why).
      // So is an interface made anew under a running agent (wireguard-go died): it has no sessions.
      const plan = planPeers(peers, dump.peers, this.version === null || made !== null);
      await applyPlan(this.o.iface, plan.clauses, this.run);
      if (plan.added + plan.updated + plan.removed > 0)
        this.o.log(
          `mesh: peers at version ${head.version}: ${plan.added} added, ${plan.updated} updated, ${plan.removed} removed`,
        );
      await this.filter(peers);
      this.names = new Map(peers.map((p) => [p.public_key, p.node]));
      this.version = head.version;
      this.lastSync = new Date().toISOString();
      if (this.problem !== null) this.o.log("mesh: in step again");
      this.problem = null;
      this.failures = 0;
    } catch (err) {
      const message = (err as Error).message;
      if (this.problem !== message) this.o.log(`mesh: ${message}`);
      this.problem = message;
      this.failures++;
      // The interface may have been removed under us (a reboot of wireguard-go): bring it up again.
      this.up = null;
    }
  }

  /**
   * The interface as `wg` reports it, its private key set again from the key file when its public
   * key is not the one the fleet holds (after `unibus-agent wg update --rotate-key`).
   */
  private async withFleetKey(recorded: string) {
    let dump = await readInterface(this.o.iface, this.run);
    if (!dump) throw new Error(`${this.o.iface} is gone`);
    if (dump.public_key === recorded) return dump;
    await this.run("wg", ["set", this.o.iface, "private-key", this.o.keyFile]);
    dump = await readInterface(this.o.iface, this.run);
    if (!dump) throw new Error(`${this.o.iface} is gone`);
    if (dump.public_key !== recorded)
      throw new Error(
        `the fleet holds WireGuard key ${recorded} for this node but ${this.o.keyFile} is another's; run unibus-agent wg update`,
      );
    this.o.log(`mesh: ${this.o.iface} now uses the key the fleet holds (${recorded})`);
    return dump;
  }

  /** The overlay's nftables rules for these peers, applied when they changed; a failure is reported, not fatal. */
  private async filter(peers: WgPeer[]): Promise<void> {
    if (!this.o.firewall) return;
    const script = renderFirewall({
      iface: this.o.iface,
      peers: peers.map((p) => p.overlay_ip),
      ...(this.o.firewall.route ? { route: this.o.firewall.route } : {}),
    });
    if (script === this.rules) return;
    try {
      await applyFirewall(script, this.run);
      this.rules = script;
      if (this.firewallProblem !== null) this.o.log("mesh: the overlay's firewall is in place again");
      this.firewallProblem = null;
    } catch (err) {
      const message = (err as Error).message;
      if (this.firewallProblem !== message) this.o.log(`mesh: ${message}`);
      this.firewallProblem = message;
    }
  }

  private async writeState(): Promise<void> {
    if (!this.o.stateFile) return;
    try {
      writeMeshState(this.o.stateFile, await this.info());
      this.stateProblem = null;
    } catch (err) {
      const message = `mesh: could not write ${this.o.stateFile}: ${(err as Error).message}`;
      if (this.stateProblem !== message) this.o.log(message);
      this.stateProblem = message;
    }
  }

  /** agent.mesh in `status`: the interface as `wg show` reports it now. */
  async info(): Promise<MeshInfo> {
    const dump = await readInterface(this.o.iface, this.run);
    const peers = dump?.peers ?? [];
    return {
      interface: this.o.iface,
      mode: this.mode,
      overlay_ip: this.up?.overlayIp ?? null,
      listen_port: dump?.listen_port ?? null,
      version: this.version,
      last_sync: this.lastSync,
      problem: this.problem ?? (dump ? null : `${this.o.iface} is not up`),
      firewall: !this.o.firewall ? "off" : this.firewallProblem ? "failed" : this.rules ? "nftables" : "pending",
      firewall_problem: this.firewallProblem,
      peer_count: peers.length,
      peers: peers.slice(0, MAX_STATUS_PEERS).map((p) => ({
        node: this.names.get(p.public_key) ?? null,
        public_key: p.public_key,
        endpoint: p.endpoint,
        latest_handshake: p.latest_handshake > 0 ? new Date(p.latest_handshake * 1000).toISOString() : null,
      })),
    };
  }
}
