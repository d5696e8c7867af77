export * from "./decider.ts";
export * from "./projection.ts";
export * from "./settings.ts";
export * from "./permissions.ts";
export * from "./resolve.ts";
