// In front of `unibus.enroll.wait.announce`: which wait bundle a waiting node comes with, proven
// by the bundle key's signature (services/core/wait-proof.ts), and a bound on what one bundle may
// register: so many waiting nodes at once, so many new ones a minute, so many announcements a
// minute (each is a write to the wait bucket). The quotas are charged only once the bundle's
// signature has been verified and its key is an active wait bundle: a named bundle is not charged.
// One process's count: with several membershipds behind the queue group, each bounds its own share.
import { WaitAnnounceRequest, type Reply } from "../../schemas/mod.ts";
import {
  checkBundleProof,
  domainError,
  identityAggregate,
  QuotaLedger,
  quotaError,
  type DomainError,
  type QuotaRefusal,
} from "../core/mod.ts";
import type { AggregateStore } from "../bus/mod.ts";
import { errorReply } from "./command-pipeline.ts";
import { parseRequest } from "./request-json.ts";

export interface WaitLimits {
  /** Nodes one bundle may have waiting at once (each announced within the wait bucket's TTL). */
  waitingPerBundle: number;
  /** New waiting nodes (codes) one bundle may register per minute. */
  newPerMinute: number;
  /** Announcements one bundle may send per minute (a waiting node sends one every 3 s). */
  announcementsPerMinute: number;
}

export const DEFAULT_WAIT_LIMITS: WaitLimits = {
  waitingPerBundle: 16,
  newPerMinute: 8,
  announcementsPerMinute: 16 * 20 * 2,
};

/** The name wait bundles' bootstrap identities are issued under (EnrollmentService.waitBundle). */
const WAIT_BUNDLE_NAME = "enroll-wait";
const MAX_BUNDLES = 10_000;

export class WaitGate {
  /** Refusals by quota name, for /metrics. */
  readonly refusals = new Map<string, number>();
  private readonly rates: QuotaLedger;
  /** bundle key → wait id → when it last announced. */
  private readonly waiting = new Map<string, Map<string, number>>();

  constructor(
    private readonly aggregates: AggregateStore,
    /** How long a waiting node counts after its last announcement: the wait bucket's TTL. */
    private readonly ttlMs: number,
    private readonly limits: WaitLimits = DEFAULT_WAIT_LIMITS,
    private readonly now: () => number = Date.now,
  ) {
    this.rates = new QuotaLedger(
      [
        { name: "wait_announcements", unit: "announcements", limit: limits.announcementsPerMinute, windowMs: 60_000 },
        { name: "wait_new_nodes", unit: "new waiting nodes", limit: limits.newPerMinute, windowMs: 60_000 },
      ],
      MAX_BUNDLES,
    );
  }

  /**
   * Checks the request and charges its bundle. Either a reply to send as is (a refusal), or the
   * announcement's bytes for EnrollmentService.handleAnnounce and `settle`, to call with its reply.
   */
  async admit(raw: Uint8Array): Promise<{ reply: Reply } | { announcement: Uint8Array; settle(reply: unknown): void }> {
    const parsed = parseRequest(raw, WaitAnnounceRequest);
    if ("reply" in parsed) return parsed;
    const { announcement, bundleSigned } = checkBundleProof(parsed.value);
    if (!bundleSigned)
      return {
        reply: errorReply(domainError("E_PROOF", "the announcement is not signed by the wait bundle it names")),
      };
    const bundle = announcement.bundle_key;
    const id = (await this.aggregates.load(identityAggregate, bundle)).state;
    if (id.status !== "active" || id.role !== "bootstrap" || id.name !== WAIT_BUNDLE_NAME) {
      return {
        reply: errorReply(
          domainError("E_FORBIDDEN", "the key that signed this announcement is not an active wait bundle"),
        ),
      };
    }
    const known = this.waitingOf(bundle, this.now()).has(announcement.wait_id);
    const refused = this.charge(bundle, announcement.wait_id);
    if (refused) return { reply: errorReply(refused) };
    return {
      announcement: new TextEncoder().encode(JSON.stringify(announcement)),
      settle: (reply) => this.settle(bundle, announcement.wait_id, known, reply),
    };
  }

  private refuse(bundle: string, r: QuotaRefusal): DomainError {
    this.refusals.set(r.rule.name, (this.refusals.get(r.rule.name) ?? 0) + 1);
    return quotaError(`wait bundle ${bundle.slice(0, 12)}…`, r);
  }

  private charge(bundle: string, waitId: string): DomainError | null {
    const now = this.now();
    const ids = this.waitingOf(bundle, now);
    const known = ids.has(waitId);
    if (!known && ids.size >= this.limits.waitingPerBundle) {
      const frees = Math.min(...ids.values()) + this.ttlMs - now;
      this.refusals.set("wait_waiting_nodes", (this.refusals.get("wait_waiting_nodes") ?? 0) + 1);
      return domainError(
        "E_QUOTA",
        `wait bundle ${bundle.slice(0, 12)}… already has ${ids.size} nodes waiting, its wait_waiting_nodes quota (${this.limits.waitingPerBundle} at once); one frees when it is enrolled, or within ${Math.ceil(frees / 1000)} s if one stops announcing`,
        {
          quota: "wait_waiting_nodes",
          limit: this.limits.waitingPerBundle,
          retry_after_ms: frees,
        },
      );
    }
    const r = this.rates.take(
      bundle,
      known ? { wait_announcements: 1 } : { wait_announcements: 1, wait_new_nodes: 1 },
      now,
    );
    if (r) return this.refuse(bundle, r);
    ids.set(waitId, now);
    return null;
  }

  /** An enrolled node no longer counts as waiting, nor does a new one that was refused (nothing was stored). */
  private settle(bundle: string, waitId: string, known: boolean, reply: unknown): void {
    const r = reply as { ok?: boolean; result?: { state?: string } };
    const enrolled = r?.ok === true && r.result?.state === "enrolled";
    if (enrolled || (!known && r?.ok !== true)) this.waiting.get(bundle)?.delete(waitId);
  }

  /** The bundle's waiting nodes, those silent for longer than the TTL forgotten. */
  private waitingOf(bundle: string, now: number): Map<string, number> {
    let ids = this.waiting.get(bundle);
    if (!ids) {
      if (this.waiting.size >= MAX_BUNDLES) this.waiting.delete(this.waiting.keys().next().value!);
      ids = new Map();
      this.waiting.set(bundle, ids);
    }
    for (const [id, at] of ids) if (now - at > this.ttlMs) ids.delete(id);
    return ids;
  }
}
