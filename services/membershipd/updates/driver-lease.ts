// One rollout driver at a time: the membershipd holding the lease drives, the others wait. The
// lease is one KV entry (`rollout-driver` in UNIBUS_leases, a bucket whose max_age is the lease's
// time to live): taken with create (expected revision 0), renewed with update (expected revision:
// the one this holder wrote last), dropped on a clean stop with a delete at that revision. A
// holder that dies stops renewing, the server expires the entry `ttl` after its last write, and a
// waiting membershipd's next create wins. Chosen over the meta leader because it works the same
// on one server and on a cluster (two control planes on one server have the same meta leader),
// and the expiry is the server's clock alone, so the membershipds' clocks never matter.
//
// Why two drivers never send in the same window: the server stamps a renewal after the holder
// sent it, so the entry lives at least `ttl` past the moment the holder started that renewal. The
// holder counts itself as holding only until `ttl - margin` past that moment (on its monotonic
// clock), so it stops sending at least `margin` before anyone else can take the entry.
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";

export const LEASES_BUCKET = "UNIBUS_leases";
export const DRIVER_LEASE_KEY = "rollout-driver";
export const DEFAULT_LEASE_MS = 10_000;
const RELEASE_WAIT_MS = 1000;

export interface LeaseOptions {
  nc: NatsConnection;
  replicas: number;
  /** Who holds it, as written into the entry (name and a per-start token: a restarted process is a new holder). */
  holder: string;
  /** The time to live of a bucket made now; an existing bucket keeps its own (its max_age rules). */
  ttlMs?: number;
  log(line: string): void;
}

/** Whether a lease renewed at `renewedAt` (monotonic ms) still counts as held at `now`. */
export function leaseCurrent(renewedAt: number | null, now: number, ttlMs: number): boolean {
  return renewedAt !== null && now - renewedAt < ttlMs - leaseMargin(ttlMs);
}

/** How long before the server could expire it a holder stops counting on it: a quarter of the ttl. */
export const leaseMargin = (ttlMs: number) => Math.ceil(ttlMs / 4);

function isWrongRevision(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

export class DriverLease {
  private revision: number | null = null;
  private renewedAt: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private stopped = false;
  private onAcquired: () => void = () => {};

  private constructor(
    private readonly o: LeaseOptions,
    private readonly kv: KV,
    readonly ttlMs: number,
  ) {}

  static async open(o: LeaseOptions): Promise<DriverLease> {
    const kv = await new Kvm(o.nc).create(LEASES_BUCKET, {
      replicas: o.replicas,
      history: 1,
      ttl: o.ttlMs ?? DEFAULT_LEASE_MS,
    });
    const ttl = (await kv.status()).ttl;
    if (!(ttl > 0)) throw new Error(`${LEASES_BUCKET} has no max_age: it cannot hold a lease`);
    return new DriverLease(o, kv, ttl);
  }

  /** True while this process may send updates. */
  held(): boolean {
    return this.revision !== null && leaseCurrent(this.renewedAt, performance.now(), this.ttlMs);
  }

  /** Takes the lease when it is free and keeps it; `onAcquired` runs each time it is taken (the driver scans at once). */
  start(onAcquired: () => void): void {
    this.onAcquired = onAcquired;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), leaseMargin(this.ttlMs));
    this.timer.unref();
  }

  /**
   * Stops renewing and, if held, deletes the entry so another membershipd takes over at once.
   * A renewal in flight is waited for first (its revision is the one to delete). Waits at most
   * RELEASE_WAIT_MS in all (NATS may be down while membershipd stops): an entry left behind
   * expires by itself.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((res) => (timer = setTimeout(res, RELEASE_WAIT_MS)));
    const release = async () => {
      await this.ticking;
      const rev = this.revision;
      this.revision = null;
      if (rev !== null) await this.kv.delete(DRIVER_LEASE_KEY, { previousSeq: rev }).catch(() => {});
    };
    await Promise.race([release(), deadline]);
    this.revision = null;
    clearTimeout(timer);
  }

  private tick(): Promise<void> {
    if (this.stopped || this.ticking) return this.ticking ?? Promise.resolve();
    this.ticking = this.renewOrTake().finally(() => (this.ticking = null));
    return this.ticking;
  }

  private async renewOrTake(): Promise<void> {
    const sentAt = performance.now();
    const value = JSON.stringify({ holder: this.o.holder, at: new Date().toISOString() });
    const had = this.revision !== null;
    try {
      this.revision = had
        ? await this.kv.update(DRIVER_LEASE_KEY, value, this.revision!)
        : await this.kv.create(DRIVER_LEASE_KEY, value);
      this.renewedAt = sentAt;
      // Stopped meanwhile: stop() deletes what was just written; nothing starts driving.
      if (this.stopped) return;
      if (!had) {
        this.o.log(`rollouts: this membershipd drives them now (lease ${DRIVER_LEASE_KEY}, ttl ${this.ttlMs} ms)`);
        this.onAcquired();
      }
    } catch (err) {
      if (this.stopped) return;
      if (isWrongRevision(err)) {
        // Someone else holds it (or took it after ours expired): wait for it to expire.
        if (had) this.o.log("rollouts: the driver lease was taken over by another membershipd");
        this.revision = null;
        this.renewedAt = null;
      } else if (had && !this.held()) {
        this.o.log(
          `rollouts: could not renew the driver lease (${(err as Error).message}); not driving until it is renewed`,
        );
      }
      // Another failure (a timeout, a reconnect) keeps the revision: the next tick tries again,
      // and held() turns false on its own once the margin is reached.
    }
  }
}
