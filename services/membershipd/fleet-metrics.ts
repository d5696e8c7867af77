// The fleet's families on /metrics, from the UNIBUS_nodes tally (vault-tally.ts): each is empty
// until the tally has read every node once.
import type { Metrics } from "./metrics.ts";
import type { VaultTally } from "./vault-tally.ts";

export function watchFleet(metrics: Metrics, tally: VaultTally): void {
  metrics.addGauge(
    "unibus_nodes",
    "Enrolled nodes by status (active, left, revoked).",
    "status",
    () => tally.fleet()?.nodesByStatus ?? null,
  );
  metrics.addGauge(
    "unibus_services",
    "Services of active nodes by their last reported state.",
    "state",
    () => tally.fleet()?.servicesByState ?? null,
  );
  metrics.addGauge(
    "unibus_node_report_age_seconds",
    "Seconds since each active node's agent last reported (membershipd's clock).",
    "node",
    () => tally.fleet()?.reportAge ?? null,
  );
  metrics.addGauge("unibus_vaults", "Active nodes' vaults by their last reported state.", "state", () => {
    const v = tally.counts();
    if (!v) return null;
    return new Map([
      ["unlocked", v.unlocked],
      ["waiting_for_peers", v.waiting_for_peers],
      ["genesis_locked", v.genesis_locked],
      ["locked", v.locked],
    ]);
  });
}
