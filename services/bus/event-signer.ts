// Group signing for the write path: the events that commands hand in during one turn of the event
// loop are signed together with one Ed25519 signature (signEventBatch), so a busy writer pays a
// fraction of a signature per event. A lone event is signed alone, in the plain form, after at most
// one loop turn. Signing is synchronous (envelope.ts says why), so one turn signs one batch at most
// and leaves the rest to the next: the acks that came meanwhile are not held up behind a backlog.
import { signEventBatch, type EventDraft, type HashedEvent, type Signer } from "../core/mod.ts";

interface Waiting {
  draft: EventDraft;
  resolve(e: HashedEvent): void;
  reject(err: unknown): void;
}

/** Batches beyond this are split: the proof grows with log2 of the size, the latency with the size. */
export const MAX_EVENT_BATCH = 64;

/**
 * `UNIBUS_EVENT_BATCH_MAX=1` signs every event alone, in the form readers older than batches
 * understand: for a rolling upgrade, until every membershipd reads batch proofs.
 */
function configuredMax(): number {
  const n = Number(process.env.UNIBUS_EVENT_BATCH_MAX ?? MAX_EVENT_BATCH);
  return Number.isInteger(n) && n >= 1 && n <= MAX_EVENT_BATCH ? n : MAX_EVENT_BATCH;
}

export class EventSigner {
  private waiting: Waiting[] = [];
  private scheduled = false;
  /** Signatures made and events they covered: events / batches is the mean batch size. */
  readonly stats = { batches: 0, events: 0 };

  constructor(
    private readonly signer: Signer,
    private readonly maxBatch = configuredMax(),
  ) {}

  // setImmediate runs after the I/O callbacks of this turn: every ack that arrived with this one has
  // had its chance to hand in its next event.
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** The signed event with its hash (what the aggregate's next event carries as `prev`). */
  sign(draft: EventDraft): Promise<HashedEvent> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ draft, resolve, reject });
      this.schedule();
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.waiting.splice(0, this.maxBatch);
    if (this.waiting.length > 0) this.schedule();
    this.stats.batches++;
    this.stats.events += batch.length;
    let signed: HashedEvent[];
    try {
      signed = signEventBatch(
        batch.map((w) => w.draft),
        this.signer,
      );
    } catch (err) {
      batch.forEach((w) => w.reject(err));
      return;
    }
    batch.forEach((w, i) => w.resolve(signed[i]!));
  }
}
