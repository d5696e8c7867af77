export * from "./event-store.ts";
export * from "./aggregate-store.ts";
export * from "./projector.ts";
export * from "./buckets.ts";
export * from "./connect.ts";
export * from "./embedded-server.ts";
export * from "./at-rest-key.ts";
export * from "./secret-file.ts";
