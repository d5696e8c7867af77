// How long the projections have been behind the event stream, from samples of the stream's last
// sequence: "behind" starts when a sample finds events the projector has not applied, and ends
// when it has applied everything the stream held when that started (then it is moving, and the
// clock restarts for what came since). A projector one event behind at every sample under steady
// load is fine; one that has not reached a sequence seen five seconds ago is not.
export const LAG_GRACE_MS = 5_000;

export interface LagState {
  /** Events the stream holds that the projections lack, at the last sample. */
  lag: number;
  /** How long the oldest unapplied event of the last sample has been waiting (0: caught up). */
  behindMs: number;
}

export class LagWatch {
  private behindSince: number | null = null;
  private target = 0;
  private last: LagState = { lag: 0, behindMs: 0 };

  observe(applied: number, lastSeq: number, now: number): LagState {
    if (applied >= lastSeq) this.behindSince = null;
    else if (this.behindSince === null || applied >= this.target) {
      this.behindSince = now;
      this.target = lastSeq;
    }
    this.last = {
      lag: Math.max(0, lastSeq - applied),
      behindMs: this.behindSince === null ? 0 : now - this.behindSince,
    };
    return this.last;
  }

  get state(): LagState {
    return this.last;
  }

  /** True once the projections have stayed behind for the grace period. */
  get stalled(): boolean {
    return this.last.behindMs >= LAG_GRACE_MS;
  }
}
