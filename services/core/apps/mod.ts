export * from "./decider.ts";
export * from "./projection.ts";
