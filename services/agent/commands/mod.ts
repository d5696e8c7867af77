// The agent's command endpoint: signed commands on `unibus.cmd.node.<node>.<action>`, checked like
// membershipd's, run once (a record on disk), reported as CommandReceived/CommandCompleted.
export {
  startNodeCommandService,
  AGENT_SERVICE_NAME,
  MAX_IN_FLIGHT,
  type NodeCommandService,
  type NodeCommandServiceOptions,
} from "./endpoint.ts";
export type { NodeOps, OpResult, LogsRequest } from "./ops.ts";
export type { CommandEventSink, CommandReceivedData, CommandCompletedData } from "./handle.ts";
export { CommandRecord, INTERRUPTED, type CommandRecordOptions, type Prior } from "./record.ts";
export { RECORD_RETENTION_MS, type RecordEntry } from "./record-lines.ts";
export { TrustList, type TrustCheck, type TrustFetcher, type TrustListOptions } from "./trust.ts";
export { fetchTrust, TRUST_SUBJECT } from "./fetch-trust.ts";
export { checkNodeCommand, type CheckedCommand, type CheckResult } from "./check.ts";
