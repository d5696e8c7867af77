export * from "./decider.ts";
export * from "./projection.ts";
export * from "./peers.ts";
