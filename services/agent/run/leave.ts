import { existsSync, renameSync } from "node:fs";
import type { NodeStore } from "../node-store.ts";

/** After `leave`: the enrollment is set aside (not deleted: an operator may want to look at it). */
export function setEnrollmentAside(store: NodeStore, node: string, log: (line: string) => void): void {
  for (const f of ["config", "creds"] as const) {
    const p = store.path(f);
    if (existsSync(p)) renameSync(p, `${p}.left`);
  }
  log(`left the fleet: ${node}'s enrollment is set aside (${store.path("config")}.left)`);
}
