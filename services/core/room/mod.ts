export * from "./decider.ts";
export * from "./projection.ts";
export * from "./key-projections.ts";
