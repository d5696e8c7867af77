// What the daemon does for each action once a command passed every check. The endpoint owns the
// checks, the record, the events and the reply; these only act. Results are either plain values
// (status, leave) or the supervisor's `{ ok, result | error }`, whose codes reach the caller as they are.
import type {
  AppsSyncResult,
  HealthResult,
  LeaveResult,
  NodeStatusResult,
  ServiceStatus,
} from "../../../schemas/mod.ts";
import type { LogsAnswer } from "../logs/mod.ts";

/** An action's outcome in the reply's shape; `code` is the supervisor's or the core's (E_SERVICE_UNKNOWN, …). */
export type OpResult<T> =
  | { ok: true; result: T }
  | { ok: false; error: { code: string; message: string; details?: Record<string, unknown> } };

export interface LogsRequest {
  service: string;
  lines: number;
  since?: string;
}

export interface NodeOps {
  /** The hot path: no disk, no waiting on other commands. */
  status(): NodeStatusResult | Promise<NodeStatusResult>;
  start(service: string): Promise<OpResult<ServiceStatus>>;
  stop(service: string): Promise<OpResult<ServiceStatus>>;
  restart(service: string): Promise<OpResult<ServiceStatus>>;
  /** From the agent's memory: answerLogsQuery (services/agent/logs). */
  logs(args: LogsRequest): OpResult<LogsAnswer> | Promise<OpResult<LogsAnswer>>;
  /** Runs the service's declared health check once. */
  execCheck(service: string): Promise<OpResult<HealthResult>>;
  /** Stops every service; the daemon ends itself after the reply is out. */
  leave(): Promise<LeaveResult>;
  /** A signed release into the standby slot, switch, probe, commit or roll back (services/agent/update). */
  update(attempt: string, manifest: unknown, signature: string | null): Promise<OpResult<unknown>>;
  /** Genesis: opens the data key the operator sealed to this node and unlocks the vault with it. */
  unlock?(sealed: string): Promise<OpResult<unknown>>;
  /** membershipd's nudge: a reconcile of the node's apps is started (or queued behind the running one); not awaited. */
  appsSync?(): Promise<OpResult<AppsSyncResult>>;
}
