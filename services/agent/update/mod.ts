// Signed updates on the node: A/B slots of each release name with automatic rollback.
export {
  Updater,
  DEFAULT_SELF_DEADLINE_MS,
  type UpdaterOptions,
  type UpdateEventType,
  type CrashPoint,
  type RunningOutcome,
} from "./updater.ts";
export {
  sandboxedSteps,
  unsandboxedStep,
  type Step,
  type StepResult,
  type StepRunner,
  type StepRunnerOptions,
} from "./run-step.ts";
export { objectStoreFetcher, readBounded, RELEASES_OBJECT_STORE, type ReleaseFetcher, type Fetched } from "./fetch.ts";
export { listTar, unpackTar, DEFAULT_TAR_LIMITS, type TarLimits, type TarEntry } from "./tar.ts";
export * from "./slots.ts";
export { loadSlotState, saveSlotState, writeFileAtomic } from "./state-file.ts";
export { createAgentUpdater, readReleaseKeys, RELEASE_KEYS_FILE, type AgentUpdaterOptions } from "./for-agent.ts";
export { bootRelease, BOOT_NOTE, type BootChoice } from "./boot.ts";
export {
  SELF_RELEASE,
  SELF_ENTRY,
  BOOT_ENV,
  EXIT_RESTART_INTO_SLOT,
  EXIT_TRIAL_UNHEALTHY,
  releasesDir,
  runningSlot,
} from "./self.ts";
