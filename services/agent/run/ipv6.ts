// IPv6 switched off on a node that asks for it (`run --disable-ipv6`): a service bound to every
// address would otherwise be reachable over IPv6, which the overlay's filter does not cover. Set
// through /proc/sys (the namespace's own), for every interface and every one made later.
import { readFileSync, writeFileSync } from "node:fs";
import { AgentError } from "./options.ts";

const KNOBS = ["all", "default"].map((c) => `/proc/sys/net/ipv6/conf/${c}/disable_ipv6`);

/** "off", "on", or "absent" (a kernel without IPv6), as this network namespace has it now. */
export function ipv6State(): "on" | "off" | "absent" {
  try {
    return KNOBS.every((k) => readFileSync(k, "utf8").trim() === "1") ? "off" : "on";
  } catch {
    return "absent";
  }
}

/** Switches IPv6 off; throws E_HOST_SETTING when it cannot (the agent then does not start). */
export function disableIpv6(): void {
  if (ipv6State() !== "on") return;
  try {
    for (const k of KNOBS) writeFileSync(k, "1\n");
  } catch (err) {
    throw new AgentError(
      "E_HOST_SETTING",
      `--disable-ipv6: cannot switch IPv6 off (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); run the agent as root, or drop the flag`,
    );
  }
}
