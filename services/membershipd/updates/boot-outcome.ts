// A self-update (a boot-managed release: the agent's own code) answers `switched` and restarts the
// agent; whether the new code commits or is rolled back by the boot step is learned later, from the
// Update* events the agent reports, folded into UNIBUS_node_releases. The driver waits for that
// instead of counting the switch as the node's outcome.
import type { KV } from "@nats-io/kv";
import { storageKey } from "../../core/mod.ts";
import { liveEntry } from "../../bus/mod.ts";

export interface NodeOutcome {
  ok: boolean;
  code: string | null;
  reason: string | null;
}

interface NodeReleaseView {
  state: string;
  version: string | null;
  last_reason: string | null;
  seq: number;
}

/**
 * The outcome a node's release record tells for an update to `version` sent when the record was at
 * `sentAtSeq`, or null while it is still on trial. Only what happened after the send counts.
 */
export function bootOutcome(
  record: NodeReleaseView | undefined,
  version: string,
  sentAtSeq: number,
): NodeOutcome | null {
  if (!record || record.seq <= sentAtSeq) return null;
  if (record.state === "committed" && record.version === version) return { ok: true, code: null, reason: null };
  if (record.state === "rolled-back") return { ok: false, code: "E_UPDATE_ROLLED_BACK", reason: record.last_reason };
  if (record.state === "rejected") {
    // The projection keeps the refusal as "<code>: <reason>" (node-releases.ts).
    const m = /^(E_[A-Z0-9_]+): ([\s\S]*)$/.exec(record.last_reason ?? "");
    return { ok: false, code: m ? m[1]! : "E_UPDATE_REJECTED", reason: m ? m[2]! : record.last_reason };
  }
  return null;
}

export async function nodeReleaseSeq(nodeReleases: KV, node: string, release: string): Promise<number> {
  return liveEntry<NodeReleaseView>(await nodeReleases.get(storageKey(`${node}.${release}`)))?.seq ?? 0;
}

export interface BootWait {
  nodeReleases: KV;
  node: string;
  release: string;
  version: string;
  sentAtSeq: number;
  deadlineMs: number;
  pollMs: number;
  /** False once the driver stops or loses its lease: the wait ends with no outcome (the next holder resends). */
  carryOn(): boolean;
}

/** Polls the node's release record until it commits, rolls back, or the deadline passes; null if told to stop. */
export async function awaitBootOutcome(w: BootWait): Promise<NodeOutcome | null> {
  const until = Date.now() + w.deadlineMs;
  while (w.carryOn()) {
    const record = liveEntry<NodeReleaseView>(await w.nodeReleases.get(storageKey(`${w.node}.${w.release}`)));
    const outcome = bootOutcome(record, w.version, w.sentAtSeq);
    if (outcome) return outcome;
    if (Date.now() > until) {
      return {
        ok: false,
        code: "E_UNAVAILABLE",
        reason: `the agent switched to ${w.release} ${w.version} but reported no commit or rollback within ${Math.round(w.deadlineMs / 1000)} s`,
      };
    }
    await new Promise((r) => setTimeout(r, w.pollMs));
  }
  return null;
}
