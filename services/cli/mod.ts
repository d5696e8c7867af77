export { main } from "./main.ts";
export { buildCommand, sendCommand, MEMBERSHIP_PREFIX } from "./request.ts";
export { auditReplay, auditVerify, rebuildProjections } from "./audit.ts";
export { askAgent, type AgentAnswer, type AgentLink } from "./agent-request.ts";
export { outcomeOf } from "./agent-outcome.ts";
export { mapLimited } from "./limited.ts";
export { parseSelector, selects } from "./selector.ts";
