// Whose signed commands this agent obeys: the fleet's admins (id and key), as membershipd last told
// us, and for `update` and `apps.sync` alone the updaters (membershipd's rollout driver: it can send
// this node a release, which the updater still checks against the node's own release keys, and
// nudge it to pull its desired apps, whose manifests it checks the same way; nothing else). The list is kept on disk (0600) so an agent restarted while membershipd is down still obeys
// the admins it knew. It is fetched again when membershipd announces a change, and when a command
// comes from a key we do not know (at most once a second, so unknown keys cannot make us hammer
// membershipd). A fetch that fails (a membershipd restarting, a store still catching up) is tried
// again after a doubling wait until one succeeds: the nudge that caused it is not sent twice, and a
// CA rotation's bundle or a new admin would otherwise wait for the next reconnect.
import { existsSync } from "node:fs";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { TRUST_CHANGED_SUBJECT, TrustResult, type Actor } from "../../../schemas/mod.ts";
import { readSecretFile, replaceSecretFile } from "../../bus/mod.ts";
import {
  backoffMs,
  checkControl,
  CommandRefusal,
  quietLog,
  domainError,
  isDomainError,
  zodMessage,
  type DomainError,
} from "../../core/mod.ts";

/** Asks membershipd for the admins (fetchTrust, or a test's stand-in); may throw or return an error value. */
export type TrustFetcher = () => Promise<TrustResult | DomainError>;

export interface TrustListOptions {
  now?: () => number;
  /** The least time between two fetches caused by unknown keys (default 1000 ms). */
  unknownKeyRefreshMs?: number;
  /** The waits before fetching again after a failure: doubling from minMs to maxMs (1 s to 60 s). */
  retry?: { minMs: number; maxMs: number };
  /** Says when fetches start failing and when one succeeds again. */
  log?: (line: string) => void;
}

/** The authorization step of a command: null when the actor may run it. */
export interface TrustCheck {
  authorize(actor: Actor, action: string): DomainError | null | Promise<DomainError | null>;
}

export class TrustList implements TrustCheck {
  private trusted = new Set<string>();
  private updaters = new Set<string>();
  private list: TrustResult | null = null;
  private inFlight: Promise<DomainError | null> | null = null;
  private again = false;
  private lastUnknownRefresh = Number.NEGATIVE_INFINITY;
  private sub: Subscription | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private stopped = false;
  private readonly now: () => number;
  private readonly unknownKeyRefreshMs: number;
  private readonly retry: { minMs: number; maxMs: number };
  private readonly log: (line: string) => void;
  /** Why the file on disk was not used, if it was not (it is then replaced by the next fetch). */
  readonly loadProblem: string | null = null;

  /** Reads the last good list from `path`; a file others may read or write is refused (throws). */
  constructor(
    readonly path: string,
    private readonly fetcher: TrustFetcher,
    opts: TrustListOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.unknownKeyRefreshMs = opts.unknownKeyRefreshMs ?? 1000;
    this.retry = opts.retry ?? { minMs: 1000, maxMs: 60_000 };
    this.log = opts.log ?? (() => {});
    if (!existsSync(path)) return;
    const parsed = parseTrustFile(readSecretFile(path).toString("utf8"));
    if (isDomainError(parsed)) this.loadProblem = `${path}: ${parsed.message}`;
    else this.adopt(parsed);
  }

  get admins(): readonly Actor[] {
    return this.list?.admins ?? [];
  }

  /** membershipd's time of the list held, null before the first one. */
  get at(): string | null {
    return this.list?.at ?? null;
  }

  async authorize(actor: Actor, action: string): Promise<DomainError | null> {
    const verdict = this.judge(actor, action);
    if (verdict?.code !== "E_UNKNOWN_ACTOR") return verdict;
    if (this.inFlight) await this.inFlight;
    else if (this.now() - this.lastUnknownRefresh >= this.unknownKeyRefreshMs) {
      this.lastUnknownRefresh = this.now();
      await this.refresh();
    } else return verdict;
    return this.judge(actor, action);
  }

  /**
   * Fetches the list and, if it is good, holds and saves it. Never rejects. Calls that arrive
   * during a fetch share it, and one more fetch follows it (the change they announce may be newer).
   */
  refresh(): Promise<DomainError | null> {
    if (this.inFlight) {
      this.again = true;
      return this.inFlight;
    }
    this.cancelRetry();
    const fetching = this.fetchOnce();
    this.inFlight = fetching;
    // Registered before any caller's await: they see inFlight cleared when they resume.
    void fetching.then((outcome) => {
      this.inFlight = null;
      if (!this.again) return this.settled(outcome);
      this.again = false;
      void this.refresh();
    });
    return fetching;
  }

  /**
   * Re-fetches whenever membershipd announces a change of admins: a nudge signed by a key the list
   * names as membershipd's (its updaters, services/membershipd/trust.ts). Anything else on the
   * subject (a message the server delivers for someone else) is ignored and logged.
   */
  watch(nc: NatsConnection, log?: (line: string) => void): void {
    this.stopped = false;
    this.sub?.unsubscribe();
    const ignored = quietLog(log);
    this.sub = nc.subscribe(TRUST_CHANGED_SUBJECT, {
      callback: (_err, msg) => {
        const c = checkControl(TRUST_CHANGED_SUBJECT, msg.data, this.nudgeKeys(), this.now());
        if (c.ok) void this.refresh();
        else ignored(`ignored a message on ${TRUST_CHANGED_SUBJECT} that membershipd did not sign (${c.reason})`);
      },
    });
  }

  /** The keys membershipd signs its nudges with (its rollout driver's): the updaters that are not nodes. */
  nudgeKeys(): string[] {
    return (this.list?.updaters ?? []).filter((a) => !isNodeIdentity(a)).map((a) => a.key);
  }

  stop(): void {
    this.stopped = true;
    this.cancelRetry();
    this.sub?.unsubscribe();
    this.sub = null;
  }

  /** After a fetch: a failure schedules the next try (its wait doubling), a success ends the streak. */
  private settled(outcome: DomainError | null): void {
    if (outcome === null) {
      if (this.failures > 0) this.log(`trust: fetched the admins again after ${this.failures} failed attempt(s)`);
      this.failures = 0;
      return;
    }
    if (this.stopped) return;
    const wait = backoffMs(this.failures++, { ...this.retry, jitter: 1 });
    if (this.failures === 1) this.log(`trust: ${outcome.message}; trying again in ${Math.ceil(wait / 1000)} s`);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.refresh();
    }, wait);
    this.retryTimer.unref();
  }

  private cancelRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /**
   * Only a user key listed as an admin under this very id, or as an updater for UPDATER_ACTIONS; a node
   * is never obeyed, whatever the list says.
   */
  private judge(actor: Actor, action: string): DomainError | null {
    if (isNodeIdentity(actor)) return CommandRefusal.forbidden("node", action);
    const key = trustKey(actor);
    if (this.trusted.has(key)) return null;
    if (this.updaters.has(key)) return UPDATER_ACTIONS.has(action) ? null : CommandRefusal.forbidden("updater", action);
    return CommandRefusal.unknownActor(actor.id);
  }

  private async fetchOnce(): Promise<DomainError | null> {
    let fetched: TrustResult | DomainError;
    try {
      fetched = await this.fetcher();
    } catch (err) {
      return domainError("E_UNAVAILABLE", `could not fetch the admins: ${(err as Error)?.message ?? String(err)}`);
    }
    if (isDomainError(fetched)) return fetched;
    const parsed = TrustResult.safeParse(fetched);
    if (!parsed.success)
      return domainError("E_BAD_REQUEST", `the admin list is malformed: ${zodMessage(parsed.error)}`);
    this.adopt(parsed.data);
    try {
      replaceSecretFile(this.path, JSON.stringify(parsed.data) + "\n");
    } catch (err) {
      return domainError(
        "E_INTERNAL",
        `the admin list is in use but could not be saved to ${this.path}: ${(err as Error)?.message ?? String(err)}`,
      );
    }
    return null;
  }

  private adopt(list: TrustResult): void {
    this.list = list;
    this.trusted = new Set(list.admins.filter((a) => !isNodeIdentity(a)).map(trustKey));
    this.updaters = new Set((list.updaters ?? []).filter((a) => !isNodeIdentity(a)).map(trustKey));
  }
}

/** What an updater may send: a signed release, and the nudge to pull the node's desired apps. */
const UPDATER_ACTIONS: ReadonlySet<string> = new Set(["update", "apps.sync"]);

function trustKey(actor: Actor): string {
  return `${actor.id} ${actor.key}`;
}

/** Nodes sign as `node:<name>` with an N key; users' handles have no colon and their keys start with U. */
function isNodeIdentity(actor: Actor): boolean {
  return actor.id.includes(":") || !actor.key.startsWith("U");
}

function parseTrustFile(text: string): TrustResult | DomainError {
  try {
    const parsed = TrustResult.safeParse(JSON.parse(text));
    return parsed.success
      ? parsed.data
      : domainError("E_BAD_REQUEST", `not an admin list: ${zodMessage(parsed.error)}`);
  } catch {
    return domainError("E_BAD_JSON", "not JSON");
  }
}
