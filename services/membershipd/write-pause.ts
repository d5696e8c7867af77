// While `cluster scale` changes the streams' peers, every membershipd stops taking writes: on
// nats-server 2.9 a copy being rebuilt under appends can be elected before it has caught up, and
// the appends in that gap are lost (seen: acknowledged events missing after a scale under load;
// upstream's fix of that gap is in 2.10, nats-server#4413). Reads go on; writes are answered
// E_UNAVAILABLE, which every client retries. The pause is a broadcast with a deadline, so a
// membershipd that dies mid-scale does not leave the cluster paused for longer than that.
import type { NatsConnection } from "@nats-io/transport-node";

export const WRITE_PAUSE_SUBJECT = "unibus.cluster.writes";
/** In-flight commands finish within this after a pause is announced. */
const SETTLE_MS = 1500;

export class WritePause {
  private until = 0;
  private readonly sub;

  constructor(nc: NatsConnection, private readonly log?: (line: string) => void) {
    this.sub = nc.subscribe(WRITE_PAUSE_SUBJECT, {
      callback: (_err, msg) => {
        try {
          const m = msg.json<{ pause_ms?: number }>();
          const ms = typeof m.pause_ms === "number" ? Math.min(Math.max(0, m.pause_ms), 600_000) : 0;
          this.until = ms ? Date.now() + ms : 0;
          this.log?.(ms ? `writes paused for up to ${Math.round(ms / 1000)} s (cluster scale)` : "writes resumed");
        } catch {
          // not ours: ignored
        }
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
export async function pauseWrites(nc: NatsConnection, ms: number): Promise<void> {
  nc.publish(WRITE_PAUSE_SUBJECT, JSON.stringify({ pause_ms: ms }));
  await nc.flush();
  await new Promise((r) => setTimeout(r, SETTLE_MS));
}

export async function resumeWrites(nc: NatsConnection): Promise<void> {
  nc.publish(WRITE_PAUSE_SUBJECT, JSON.stringify({ pause_ms: 0 }));
  await nc.flush();
}
