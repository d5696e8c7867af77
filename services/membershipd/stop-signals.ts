// SIGTERM and SIGINT for membershipd, phase by phase. Node's default for both is to die at once:
// a signal that lands after membershipd has said "ready" but before its shutdown handler exists
// leaves the embedded nats-server orphaned and the exit code lost (a supervisor, or a test, that
// signals on "ready" met exactly that). So the handler is in place before anything is announced,
// and the phase only decides what it does: while starting, stop what has started and exit; once
// running, the full shutdown.
type StopHandler = (signal: NodeJS.Signals) => void | Promise<void>;

const SIGNALS = ["SIGTERM", "SIGINT"] as const;

export class StopSignals {
  private handler: StopHandler | null = null;
  private fired: NodeJS.Signals | null = null;
  private readonly listener = (signal: NodeJS.Signals) => this.fire(signal);

  /** The signal that started the stop, once one has; the start path checks it before it announces anything. */
  get stopping(): NodeJS.Signals | null {
    return this.fired;
  }

  /** From now on a signal calls `handler`: one call for the first signal, later ones are ignored while it runs. */
  use(handler: StopHandler): void {
    if (this.handler === null) for (const s of SIGNALS) process.on(s, this.listener);
    this.handler = handler;
  }

  private fire(signal: NodeJS.Signals): void {
    if (this.fired || !this.handler) return;
    this.fired = signal;
    void this.handler(signal);
  }
}
