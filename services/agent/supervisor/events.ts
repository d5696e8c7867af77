// What the supervisor reports: events through the sink, and each service's status. These are the
// shapes the agent will publish, so they are schemas, not only types.
import { z } from "zod";
import { IsoTime, ServiceName } from "../../../schemas/mod.ts";

const Signal = z.string().regex(/^SIG[A-Z0-9]+$/);
const Pid = z.number().int().positive();

export const ServiceStarted = z
  .object({ type: z.literal("ServiceStarted"), ts: IsoTime, service: ServiceName, pid: Pid })
  .strict();
export const ServiceExited = z
  .object({
    type: z.literal("ServiceExited"),
    ts: IsoTime,
    service: ServiceName,
    code: z.number().int().nullable(),
    signal: Signal.nullable(),
  })
  .strict();
/** `attempt` counts restarts within the crash-loop window; a restart someone asked for is attempt 0. */
export const ServiceRestarted = z
  .object({
    type: z.literal("ServiceRestarted"),
    ts: IsoTime,
    service: ServiceName,
    reason: z.string(),
    attempt: z.number().int().min(0),
  })
  .strict();
/** The service is down and stays down until someone starts it: why. */
export const ServiceStopped = z
  .object({
    type: z.literal("ServiceStopped"),
    ts: IsoTime,
    service: ServiceName,
    reason: z.enum(["requested", "exited", "failed", "crash-loop"]),
  })
  .strict();

export const SupervisorEvent = z.discriminatedUnion("type", [
  ServiceStarted,
  ServiceExited,
  ServiceRestarted,
  ServiceStopped,
]);
export type SupervisorEvent = z.infer<typeof SupervisorEvent>;
export type StopReason = z.infer<typeof ServiceStopped>["reason"];

// Status and health results are part of the wire contract (the CLI reads them): they live in schemas/.
export { ServiceState, ServiceStatus, HealthResult } from "../../../schemas/mod.ts";

export type LineSink = (service: string, stream: "stdout" | "stderr", line: string) => void;
export type EventSink = (event: SupervisorEvent) => void;
