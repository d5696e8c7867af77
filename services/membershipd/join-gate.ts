// In front of `unibus.enroll.join`: how many failed join attempts a sender may make. Each attempt
// is charged to what it is proven to come from, never to what it merely names: the invite whose
// secret it holds (the secret's hash is a recorded invite), and the bootstrap credential that
// signed it (the invite's bootstrap key, active). A request proven by neither (an older agent, or a
// guess sent without a proof) goes to one bucket shared by all such requests, so guessing costs
// every guesser the same few tries. An attempt that joins is given back: an invite of 50 uses
// enrolls 50 nodes at once, its uses bound the successes. One process's count: with several
// membershipds each bounds its own share.
import { JoinRequest, type Reply } from "../../schemas/mod.ts";
import {
  FLEET_ID,
  fleetAggregate,
  identityAggregate,
  provenJoinSource,
  QuotaLedger,
  quotaError,
  sha256Hex,
  type DomainError,
  type QuotaRefusal,
} from "../core/mod.ts";
import type { AggregateStore } from "../bus/mod.ts";
import { errorReply } from "./command-pipeline.ts";
import { parseRequest } from "./request-json.ts";

export interface JoinLimits {
  /** Join attempts a minute with one invite's secret. */
  perInvite: number;
  /** Join attempts a minute signed by one bootstrap credential. */
  perSource: number;
  /** Join attempts a minute proven by neither, all senders together. */
  unproven: number;
}

/** An agent's join retries a few times on its own: these leave it room and a guesser very little. */
export const DEFAULT_JOIN_LIMITS: JoinLimits = { perInvite: 20, perSource: 20, unproven: 30 };

const MAX_KEYS = 10_000;
const UNPROVEN = "unproven";

export class JoinGate {
  /** Refusals by quota name, for /metrics. */
  readonly refusals = new Map<string, number>();
  private readonly rates: QuotaLedger;

  constructor(
    private readonly aggregates: AggregateStore,
    limits: JoinLimits = DEFAULT_JOIN_LIMITS,
    private readonly now: () => number = Date.now,
  ) {
    this.rates = new QuotaLedger(
      [
        { name: "join_attempts_per_invite", unit: "join attempts", limit: limits.perInvite, windowMs: 60_000 },
        { name: "join_attempts_per_source", unit: "join attempts", limit: limits.perSource, windowMs: 60_000 },
        { name: "join_attempts_unproven", unit: "join attempts", limit: limits.unproven, windowMs: 60_000 },
      ],
      MAX_KEYS,
    );
  }

  /** The request, parsed and charged, and `settle` to call with its reply; or the refusal to send as is. */
  async admit(raw: Uint8Array): Promise<{ reply: Reply } | { request: JoinRequest; settle(reply: unknown): void }> {
    const parsed = parseRequest(raw, JoinRequest);
    if ("reply" in parsed) return parsed;
    const req = parsed.value;
    const invite = sha256Hex(req.secret);
    const known = (await this.aggregates.load(fleetAggregate, FLEET_ID)).state.invites.has(invite);
    const source = await this.activeBootstrap(provenJoinSource(req));
    const charges: [string, string, string][] = [];
    if (known) charges.push([`invite ${invite}`, "join_attempts_per_invite", `invite ${invite.slice(0, 12)}…`]);
    if (source) charges.push([`source ${source}`, "join_attempts_per_source", `bootstrap key ${source.slice(0, 12)}…`]);
    if (!known && !source) charges.push([UNPROVEN, "join_attempts_unproven", "join requests without a proof"]);
    const taken: [string, string][] = [];
    for (const [key, rule, who] of charges) {
      const refused = this.charge(key, rule, who);
      if (refused) {
        this.giveBack(taken);
        return { reply: errorReply(refused) };
      }
      taken.push([key, rule]);
    }
    return {
      request: req,
      settle: (reply) => {
        if ((reply as { ok?: unknown })?.ok === true) this.giveBack(taken);
      },
    };
  }

  private giveBack(taken: [string, string][]): void {
    for (const [key, rule] of taken) this.rates.refund(key, { [rule]: 1 }, this.now());
  }

  /** `key` when it is an active bootstrap identity (an invite's, not revoked), else null. */
  private async activeBootstrap(key: string | null): Promise<string | null> {
    if (key === null) return null;
    const id = (await this.aggregates.load(identityAggregate, key)).state;
    return id.status === "active" && id.role === "bootstrap" ? key : null;
  }

  private charge(key: string, rule: string, who: string): DomainError | null {
    const r: QuotaRefusal | null = this.rates.take(key, { [rule]: 1 }, this.now());
    if (!r) return null;
    this.refusals.set(rule, (this.refusals.get(rule) ?? 0) + 1);
    return quotaError(who, r);
  }
}
