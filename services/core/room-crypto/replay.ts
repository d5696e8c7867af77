// Which messages a reader has accepted, to refuse a second copy: anyone on the subject (a server, a
// member) can publish a signed message again, and its signature still verifies. Per sender per
// epoch the memory is a low-water mark (every counter below it counts as seen) and the counters seen
// above it. Messages may arrive out of order, so a gap stays open until its message comes, but at
// most MAX_OPEN_COUNTERS counters wait above the mark: past that the oldest gaps close, and a message
// that late is refused as replayed. The memory is bounded by the epochs and members a reader keeps;
// forgetEpoch releases an epoch's.

/** Counters seen above a sender's low-water mark, at most. */
export const MAX_OPEN_COUNTERS = 1024;

interface SenderWindow {
  /** Every counter below this counts as seen. */
  floor: number;
  /** Counters at or above `floor` already accepted. */
  seen: Set<number>;
}

export class ReplayMemory {
  /** `<room>.<epoch>` → sender → its window. */
  readonly #epochs = new Map<string, Map<string, SenderWindow>>();

  /** True when the message was accepted before, or is older than the oldest gap still open. */
  seen(room: string, epoch: number, sender: string, counter: number): boolean {
    const w = this.#epochs.get(epochKey(room, epoch))?.get(sender);
    return w !== undefined && (counter < w.floor || w.seen.has(counter));
  }

  /** Records an accepted message; call only after it decrypted and verified. */
  accept(room: string, epoch: number, sender: string, counter: number): void {
    const key = epochKey(room, epoch);
    let senders = this.#epochs.get(key);
    if (senders === undefined) this.#epochs.set(key, (senders = new Map()));
    let w = senders.get(sender);
    if (w === undefined) senders.set(sender, (w = { floor: 0, seen: new Set() }));
    if (counter < w.floor) return;
    w.seen.add(counter);
    if (w.seen.size > MAX_OPEN_COUNTERS) w.floor = Math.min(...w.seen);
    while (w.seen.delete(w.floor)) w.floor++;
  }

  forgetEpoch(room: string, epoch: number): void {
    this.#epochs.delete(epochKey(room, epoch));
  }
}

// Room names are Slugs (no dots), so the key is unambiguous.
const epochKey = (room: string, epoch: number): string => `${room}.${epoch}`;
