// One lane per service: two writes to the same service (a restart and a stop, two restarts) run one
// after the other in arrival order, writes to different services run side by side. `exclusive`
// (leave) waits for every lane and holds them all until it ends.
export class Lanes {
  private readonly tails = new Map<string, Promise<void>>();
  private barrier: Promise<void> = Promise.resolve();

  /** Runs `fn` after the lane's earlier work (and any exclusive run before it) has settled. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.queue(Promise.all([this.tails.get(key), this.barrier]), fn, (done) => this.setTail(key, done));
  }

  /** Runs `fn` alone: after everything queued before it, and before anything queued after it. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const before = Promise.all([...this.tails.values(), this.barrier]);
    this.tails.clear();
    return this.queue(before, fn, (done) => (this.barrier = done));
  }

  /** Lanes with work queued or running. */
  get busy(): number {
    return this.tails.size;
  }

  private queue<T>(after: Promise<unknown>, fn: () => Promise<T>, setTail: (done: Promise<void>) => void): Promise<T> {
    const result = after.then(fn);
    const done = result.then(
      () => undefined,
      () => undefined,
    );
    setTail(done);
    return result;
  }

  private setTail(key: string, done: Promise<void>): void {
    this.tails.set(key, done);
    // Forget an idle lane, so the map holds only services with work in hand.
    void done.then(() => {
      if (this.tails.get(key) === done) this.tails.delete(key);
    });
  }
}
