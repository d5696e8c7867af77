export { main } from "./main.ts";
export { buildCommand, sendCommand, MEMBERSHIP_PREFIX } from "./request.ts";
export { auditReplay, auditVerify, rebuildProjections } from "./audit.ts";
