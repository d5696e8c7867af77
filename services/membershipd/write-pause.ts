// While `cluster scale` changes the streams' peers, every membershipd stops taking writes: on
// nats-server 2.9 a copy being rebuilt under appends can be elected before it has caught up, and
// acknowledged appends in that gap are lost (upstream's fix of that gap is in 2.10,
// nats-server#4413). Reads go on; writes are answered
// E_UNAVAILABLE, which every client retries. The pause is a broadcast with a deadline, so a
// membershipd that dies mid-scale does not leave the cluster paused for longer than that. It is a
// transient operational signal, not a state change: nothing is appended for it (the scale itself
// is ClusterScaled), and each membershipd logs it. The broadcast is signed with service.nk, which
// every membershipd of a cluster shares; anything else on the subject (a push consumer's delivery,
// say) is ignored and logged. No stream captures the subject and only membershipd may subscribe to
// it, so a genuine pause cannot be replayed; pauses are not ordered by their time, since two
// membershipds' clocks may disagree and a pause must never be dropped for that.
import type { NatsConnection } from "@nats-io/transport-node";
import { checkControl, quietLog, signControl, type Signer } from "../core/mod.ts";

export const WRITE_PAUSE_SUBJECT = "unibus.cluster.writes";
/** In-flight commands finish within this after a pause is announced. */
const SETTLE_MS = 1500;
const MAX_PAUSE_MS = 600_000;

export class WritePause {
  private until = 0;
  private readonly sub;

  /** `serviceKey`: membershipd's public key, the only signer obeyed. */
  constructor(
    nc: NatsConnection,
    serviceKey: string,
    private readonly log?: (line: string) => void,
  ) {
    const ignored = quietLog(log);
    this.sub = nc.subscribe(WRITE_PAUSE_SUBJECT, {
      callback: (_err, msg) => {
        const c = checkControl(WRITE_PAUSE_SUBJECT, msg.data, [serviceKey]);
        if (!c.ok)
          return ignored(`ignored a message on ${WRITE_PAUSE_SUBJECT} that membershipd did not sign (${c.reason})`);
        const p = c.body.pause_ms;
        const ms = typeof p === "number" && Number.isFinite(p) ? Math.min(Math.max(0, p), MAX_PAUSE_MS) : 0;
        this.until = ms ? Date.now() + ms : 0;
        this.log?.(ms ? `writes paused for up to ${Math.round(ms / 1000)} s (cluster scale)` : "writes resumed");
      },
    });
  }

  get active(): boolean {
    return Date.now() < this.until;
  }

  stop(): void {
    this.sub.unsubscribe();
  }
}

/** Pauses every membershipd's writes for at most `ms`, and waits for their in-flight ones. */
export async function pauseWrites(nc: NatsConnection, signer: Signer, ms: number): Promise<void> {
  nc.publish(WRITE_PAUSE_SUBJECT, signControl(WRITE_PAUSE_SUBJECT, { pause_ms: ms }, signer));
  await nc.flush();
  await new Promise((r) => setTimeout(r, SETTLE_MS));
}

export async function resumeWrites(nc: NatsConnection, signer: Signer): Promise<void> {
  nc.publish(WRITE_PAUSE_SUBJECT, signControl(WRITE_PAUSE_SUBJECT, { pause_ms: 0 }, signer));
  await nc.flush();
}
