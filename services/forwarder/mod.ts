export { startForwarder, runMain, type Forwarder } from "./main.ts";
export { parseConfig, ForwarderConfig, usage } from "./config.ts";
export * from "./syslog.ts";
export { toSyslog, type StoredMessage, type RecordOptions } from "./records.ts";
export { sendSession, SyslogError, type SyslogTarget } from "./session.ts";
export { PositionStore, type Position } from "./position.ts";
export { ForwarderStats, type ForwarderHealth } from "./stats.ts";
