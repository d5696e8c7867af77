export * from "./decider.ts";
export * from "./projection.ts";
export * from "./node-releases-projection.ts";
