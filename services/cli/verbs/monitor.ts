// `unibus monitor report`: every node's /healthz at once (services/cli/monitor.ts); no NATS.
import { monitorReport } from "../monitor.ts";
import { defineVerb } from "../verb.ts";

export const MONITOR_VERBS = [
  defineVerb({
    words: ["monitor", "report"],
    usage: "[--env FILE] [--url URL[,URL]]",
    help:
      "GET /healthz of every node of a cluster.env at once (FILE default $UNIBUS_CLUSTER_ENV, else deploy/cluster/cluster.env): " +
      "each node at its WG_IP when ROUTE_NETWORK=wg, its PUBLIC_IP when public, port HTTP_PORT; or of the given base URLs. One table: " +
      "status, posture flags (a name when on, -name when off), peers, meta leader, last sequence, projection lag, problems. A node gets " +
      "--timeout (2 s); an answer that is no /healthz JSON, or none in time, is unreachable. Needs no NATS. exit 0 every node ok · " +
      "1 some degraded, none unreachable · 2 some unreachable (2 also for a usage or cluster.env error: then nothing was polled)",
    flags: { env: { type: "string" }, url: { type: "string", multiple: true } },
    dryRun: "only reads /healthz; there is no command to print with --dry-run",
    run: ({ args, flags, o, givenTimeoutMs }) => monitorReport(args, flags, o, givenTimeoutMs),
  }),
];
