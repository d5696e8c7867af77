export { main } from "./main.ts";
export { join, enrollWait, decodeInvite, decodeWaitBundle, EnrollError } from "./enroll.ts";
export { fetchPinnedCa, fingerprintOf, CaPinError } from "./ca-pin.ts";
export { NodeStore } from "./node-store.ts";
