// The UID/GID a service runs as. Pure.
//
// Each service gets its own unprivileged UID, so its files, its signals and its RLIMIT_NPROC are
// its own. Unless the config names one, the UID is derived from the name, in a range nobody else
// hands out: systemd's DynamicUser= takes 61184-65519 (so not 61000-61999), /etc/subuid ranges
// start at 100000, systemd-nspawn's container ranges end at 0x6FFFFFFF, and systemd's table marks
// 0x70000000-0x7FFFFFFF unused. Two names can still hash to one UID: the service set check
// refuses that, and `sandbox.uid` settles it.
import { createHash } from "node:crypto";
import type { ServiceConfig } from "../../../schemas/mod.ts";

export const DERIVED_UID_BASE = 0x7000_0000;
export const DERIVED_UID_SPAN = 0x1_0000;

export interface ServiceIdentity {
  readonly uid: number;
  readonly gid: number;
}

export function derivedUid(name: string): number {
  return DERIVED_UID_BASE + (createHash("sha256").update(name).digest().readUInt32BE(0) % DERIVED_UID_SPAN);
}

export function serviceIdentity(config: Pick<ServiceConfig, "name" | "sandbox">): ServiceIdentity {
  const uid = config.sandbox.uid ?? derivedUid(config.name);
  return { uid, gid: config.sandbox.gid ?? uid };
}
