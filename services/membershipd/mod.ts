export { startControlPlane, COMMAND_PREFIX, type ControlPlane, type ControlPlaneOptions } from "./control-plane.ts";
export { handleCommand, MAX_COMMAND_BYTES, CLOCK_WINDOW_MS } from "./command-pipeline.ts";
export { runMain } from "./main.ts";
