export * from "./ids.ts";
export * from "./events.ts";
export * from "./envelopes.ts";
export * from "./commands.ts";
export * from "./records.ts";
export * from "./enrollment.ts";
export * from "./service-config.ts";
export * from "./node-agent.ts";
