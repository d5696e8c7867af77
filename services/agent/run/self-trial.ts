// The agent's own code on trial (a new `unibus-agent` release the boot step started from its slot):
// this process must come up healthy before the release's deadline, or exit
// EXIT_TRIAL_UNHEALTHY for the boot step to count the try (and roll back once the tries are used up).
import type { SlotName } from "../../../schemas/mod.ts";
import type { Supervisor } from "../supervisor/mod.ts";
import { EXIT_TRIAL_UNHEALTHY, SELF_RELEASE, type Updater } from "../update/mod.ts";

export interface SelfTrialOptions {
  updater: Pick<Updater, "onTrial" | "commitRunning">;
  supervisor: Pick<Supervisor, "status">;
  log: (line: string) => void;
  /** True once the agent is stopping anyway: a trial given up then needs no exit of its own. */
  stopping(): boolean;
  /** Stops the agent with this exit code. */
  exit(code: number): void;
}

export class SelfTrial {
  private readonly timer: NodeJS.Timeout;

  /** The trial of the code running from `slot`, its deadline running; null when that code is not on trial. */
  static begin(slot: SlotName | null, o: SelfTrialOptions): SelfTrial | null {
    const trial = o.updater.onTrial(SELF_RELEASE, slot);
    return trial ? new SelfTrial(slot, trial.version, trial.deadlineMs, o) : null;
  }

  private constructor(
    private readonly slot: SlotName | null,
    private readonly version: string,
    deadlineMs: number,
    private readonly o: SelfTrialOptions,
  ) {
    o.log(
      `running ${SELF_RELEASE} ${version} from slot ${slot} on trial: it commits once healthy (within ${deadlineMs} ms)`,
    );
    this.timer = setTimeout(() => this.giveUp(`not healthy within ${deadlineMs} ms`), deadlineMs);
  }

  /**
   * Healthy: connected, its command service answering (the caller's part), each service launched
   * (a service that could not even be spawned, E_SERVICE_START or E_SANDBOX_UNAVAILABLE, says the
   * new code cannot run this node's services), and the release's declared health check passing.
   * Then the slot is committed.
   */
  async commit(): Promise<void> {
    const unlaunched = this.o.supervisor.status().flatMap((s) => (s.problem ? [`${s.name} (${s.problem.code})`] : []));
    if (unlaunched.length > 0) return this.giveUp(`could not launch ${unlaunched.join(", ")}`);
    const r = await this.o.updater.commitRunning(SELF_RELEASE, this.slot);
    if (r === "unhealthy") return this.giveUp("its release's health check failed");
    this.end();
    if (r === "committed") this.o.log(`${SELF_RELEASE} ${this.version} in slot ${this.slot} is healthy: committed`);
  }

  /** The deadline no longer counts (committed, or the agent is stopping). */
  end(): void {
    clearTimeout(this.timer);
  }

  private giveUp(why: string): void {
    this.end();
    if (this.o.stopping()) return;
    this.o.log(
      `${SELF_RELEASE} ${this.version} in slot ${this.slot} ${why}; exiting (${EXIT_TRIAL_UNHEALTHY}) so the boot step counts the try`,
    );
    this.o.exit(EXIT_TRIAL_UNHEALTHY);
  }
}
