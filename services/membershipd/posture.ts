// /healthz: the security posture and health as the running system reports it, within a second,
// also when JetStream is down (then "degraded", never a hang).
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { EVENTS_STREAM, type EmbeddedNatsServer, type Projector } from "../bus/mod.ts";
import { metaPeers, type MetaCluster } from "./cluster/mod.ts";
import type { VaultCounts } from "./vault-tally.ts";
import type { BackupStatus } from "./backup/mod.ts";
import type { AgentMesh } from "./mesh-state.ts";

const PROBE_MS = 400;

/** From this share of the event stream's size limit on, membershipd says so: well before writes stop. */
export const STREAM_ALARM_RATIO = 0.8;

/** The event stream's fill as a problem sentence, or null while below the alarm (or unlimited). */
export function streamAlarm(bytes: number, maxBytes: number): string | null {
  if (!(maxBytes > 0) || bytes < STREAM_ALARM_RATIO * maxBytes) return null;
  const pct = Math.floor((100 * bytes) / maxBytes);
  // Full: less room than a typical command's events, so most writes are refused already.
  return maxBytes - bytes < 64 * 1024
    ? `the event stream is full (${bytes} of its ${maxBytes}-byte limit): writes are refused until an operator raises --event-stream-max-bytes`
    : `the event stream holds ${bytes} of its ${maxBytes}-byte limit (${pct} %): writes stop at the limit; raise --event-stream-max-bytes or add disk`;
}

export interface PostureDeps {
  node: string;
  version: string;
  clusterName: string;
  nc: NatsConnection;
  jsm: JetStreamManager;
  projector: Projector;
  server: EmbeddedNatsServer | null;
  /** Our operator's public key: subject permissions are in force only when the server trusts it. */
  operatorKey: string | null;
  /** The JetStream meta group (metaClusterView); null when not clustered. */
  meta: () => Promise<MetaCluster | null>;
  /** Active nodes' vaults by reported state (VaultTally); null while not yet known. */
  vaults?: () => VaultCounts | null;
  /** True when the running JetStream key came from the vault's hand-off and no clear key file exists. */
  sealedKeys?: () => boolean;
  /** The co-located agent's mesh (--mesh-state-file): shown under "mesh", never a problem. */
  agentMesh?: () => AgentMesh;
  /** Vault mode: the co-located agent's vault state (vault-state.json), or null. */
  agentVault?: () => { state: string; problem: string | null } | null;
  /**
   * The replica watch's findings (copies lacking messages, being rebuilt); only the meta leader's has any.
   * Shown, not a problem: the watch repairs them by itself, and a deploy waiting for "ok" must not wait on it.
   */
  replicaProblems?: () => string[];
  /** Scheduled backups (--backup-every): the newest and whether it is overdue; absent when not scheduled. */
  backups?: () => BackupStatus;
  /** Told the stream alarm (or null) each time it is computed: membershipd logs its changes. */
  onStreamAlarm?: (alarm: string | null) => void;
}

function within<T>(p: Promise<T>, ms = PROBE_MS): Promise<T | null> {
  return Promise.race([p.catch(() => null), new Promise<null>((r) => setTimeout(() => r(null), ms).unref())]);
}

/** The fields of the server's /varz that the posture reads. */
interface Varz {
  auth_required?: boolean;
  tls_required?: boolean;
  cluster?: { cluster_port?: number; tls_required?: boolean; tls_verify?: boolean };
  trusted_operators_claim?: { sub?: string }[];
}

function varzOf(server: EmbeddedNatsServer | null): Promise<Varz | null> {
  return server ? server.monitor("/varz", PROBE_MS) : Promise.resolve(null);
}

function atRest(server: EmbeddedNatsServer | null): string {
  if (!server) return "unknown";
  const enc = server.facts.encryption;
  if (!enc) return "none";
  return /chacha/i.test(enc) ? "chachapoly" : /aes/i.test(enc) ? "aes" : enc;
}

/**
 * Whether the server requires auth and TLS: from /varz, else from the INFO it sent our own
 * connection (an external NATS has no monitor we know of; a slow /varz probe must not read "none").
 */
function required(varz: Varz | null, nc: NatsConnection, field: "auth_required" | "tls_required"): boolean | null {
  if (varz) return Boolean(varz[field]);
  return nc.info ? Boolean(nc.info[field]) : null;
}

/** "mtls" only when routes require TLS and verify the peer's certificate (cluster mode's rule). */
function routes(varz: Varz | null): "none" | "mtls" | "tls" | "plain" | "unknown" {
  if (!varz) return "unknown";
  const c = varz.cluster;
  if (!c?.cluster_port) return "none";
  return c.tls_required ? (c.tls_verify ? "mtls" : "tls") : "plain";
}

export async function healthz(d: PostureDeps): Promise<{ status: string; [k: string]: unknown }> {
  const [info, varz, meta] = await Promise.all([
    within(d.jsm.streams.info(EVENTS_STREAM)),
    varzOf(d.server),
    within(d.meta(), 2 * PROBE_MS),
  ]);
  const problems: string[] = [];
  if (d.nc.isClosed() || d.server?.running === false) problems.push("nats unavailable");
  if (!info) problems.push("event stream unavailable");
  const lagging = d.projector.problem();
  if (lagging) problems.push(lagging);
  problems.push(...d.projector.quarantine.problems());
  const alarm = info ? streamAlarm(info.state.bytes, info.config.max_bytes) : null;
  if (alarm) problems.push(alarm);
  if (info) d.onStreamAlarm?.(alarm);
  const lastSeq = info?.state.last_seq ?? null;
  // A clustered server without a meta leader has lost quorum: nothing can be written.
  if (meta && (meta.cluster_size ?? 1) > 1 && !meta.leader)
    problems.push("no JetStream meta leader (cluster quorum lost)");
  const peers = metaPeers(d.node, meta);
  // Running already, but this node's own vault waits for peers: its key services cannot start.
  const vault = d.agentVault?.() ?? null;
  if (vault?.state === "waiting-for-peers")
    problems.push(`the agent's vault is waiting for peers: ${vault.problem ?? "too few guardians"}`);
  const backup = d.backups?.() ?? null;
  if (backup?.problem) problems.push(backup.problem);
  const auth = required(varz, d.nc, "auth_required");
  return {
    status: problems.length ? "degraded" : "ok",
    node: d.node,
    version: d.version,
    posture: {
      auth: auth === null ? "unknown" : auth ? "enforce" : "none",
      tls: required(varz, d.nc, "tls_required") === true,
      routes: routes(varz),
      acl: Boolean(
        varz?.auth_required && d.operatorKey && varz?.trusted_operators_claim?.some((c) => c.sub === d.operatorKey),
      ),
      at_rest: atRest(d.server),
      signed_commands: true,
      sealed_keys: d.sealedKeys?.() ?? false,
    },
    cluster: {
      name: meta?.name ?? d.clusterName,
      size: meta?.cluster_size ?? 1,
      peers: peers.map((p) => p.name),
      peers_current: peers.filter((p) => p.current).length,
      meta_leader: meta?.leader ?? (meta ? null : d.node),
    },
    stream: {
      replicas: info?.config.num_replicas ?? null,
      last_seq: lastSeq,
      bytes: info?.state.bytes ?? null,
      max_bytes: info ? Math.max(0, info.config.max_bytes) : null,
    },
    ...(vault ? { vault: { state: vault.state } } : {}),
    projections: {
      applied_seq: d.projector.applied,
      lag: lastSeq === null ? null : Math.max(0, lastSeq - d.projector.applied),
      behind_ms: d.projector.lag.state.behindMs,
    },
    // The fleet's vaults, as their nodes last reported them: a node waiting for peers has too few
    // guardians answering. Its own field: it says nothing of this membershipd's health, so no status change.
    vaults: d.vaults?.() ?? null,
    replica_repairs: d.replicaProblems?.() ?? [],
    ...(backup ? { backup } : {}),
    ...(d.agentMesh ? { mesh: d.agentMesh() } : {}),
    problems,
  };
}
