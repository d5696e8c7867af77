// Log capture on the node: the supervisor's lines in, UNIBUS_LOGS out, the last lines in memory.
export {
  LogShipper,
  type LineSink,
  type LogShipperOptions,
  type LogShipperStats,
  type ServiceLogStats,
} from "./shipper.ts";
export { LineRing, type CapturedLine, type OutputStream } from "./ring.ts";
export { ShipQueue, type LossRange, type Outgoing, type QueuedLine, type QueueLimits } from "./queue.ts";
export { LogsQueryArgs, answerLogsQuery, type LogsAnswer, type LogsQueryResult } from "./query.ts";
