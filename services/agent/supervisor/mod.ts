export { Supervisor, type SupervisorOptions, type SandboxPosture, type CreatedSupervisor } from "./supervisor.ts";
export { loadServiceConfigs, type ConfigError, type LoadedConfigs } from "./load-configs.ts";
export {
  SupervisorEvent,
  ServiceStarted,
  ServiceExited,
  ServiceRestarted,
  ServiceStopped,
  ServiceState,
  ServiceStatus,
  HealthResult,
  type EventSink,
  type LineSink,
  type StopReason,
} from "./events.ts";
export type { ServiceError, SupervisorErrorCode, Outcome } from "./errors.ts";
export type { SandboxProbe } from "./probe.ts";
export type { Tools } from "./sandbox.ts";
export { StepSandboxRunner, type SandboxedStepResult, type StepSandbox } from "./step.ts";
export { serviceIdentity, type ServiceIdentity } from "./identity.ts";
export { writableRootProblem, type WritableRoots } from "./writable.ts";
export { landlockAbi, landlockNetSupported } from "./landlock/mod.ts";
export { limitsMode, type LimitsMode } from "./limits-mode.ts";
