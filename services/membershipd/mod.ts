export { startControlPlane, COMMAND_PREFIX, type ControlPlane, type ControlPlaneOptions } from "./control-plane.ts";
export { handleCommand, MAX_COMMAND_BYTES, CLOCK_WINDOW_MS } from "./command-pipeline.ts";
export { runMain } from "./main.ts";
export { prepareSecurity, type SecurityMaterial } from "./security.ts";
export { serviceSigner, adminSigner, driverSigner, DRIVER_ACTOR_ID } from "./identities.ts";
export { ADMIN_CREDS_FILE, ENROLL_WAIT_BUCKET, type PlaneSecurity } from "./auth-services.ts";
export { JOIN_SUBJECT, WAIT_ANNOUNCE_SUBJECT } from "./enrollment.ts";
