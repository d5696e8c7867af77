// The membership command service: one queue-group subscription on `unibus.cmd.membership.>` that
// answers inbox replies only, refuses writes while a cluster scale holds them, bounds the commands in
// flight, runs each through the pipeline and counts it in the metrics.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { KV } from "@nats-io/kv";
import type { Reply } from "../../schemas/mod.ts";
import { domainError, isReadAction, replyGuard } from "../core/mod.ts";
import { parseActionArgs, type createActions } from "./actions.ts";
import { errorReply, handleCommand, type ActorRecord } from "./command-pipeline.ts";
import type { Metrics } from "./metrics.ts";
import { kvNonceStore } from "./nonce-store.ts";
import type { WritePause } from "./write-pause.ts";

export const COMMAND_PREFIX = "unibus.cmd.membership.";
const MAX_IN_FLIGHT = 512;

export interface CommandServiceDeps {
  nc: NatsConnection;
  nonces: KV;
  run: ReturnType<typeof createActions>;
  lookupActor: (id: string) => Promise<ActorRecord | null>;
  pause: WritePause;
  metrics: Metrics;
  log?: ((line: string) => void) | undefined;
}

export function serveCommands(d: CommandServiceDeps): Subscription {
  // One nonce store for every command: a copy of a write running here waits on its promise (command-pipeline.ts).
  const nonces = kvNonceStore(d.nonces);
  let inFlight = 0;
  const inboxOnly = replyGuard("membershipd", d.log);
  return d.nc.subscribe(`${COMMAND_PREFIX}>`, {
    queue: "membershipd",
    callback: (err, msg) => {
      if (err || !inboxOnly(msg.subject, msg.reply)) return;
      const action = msg.subject.slice(COMMAND_PREFIX.length);
      const refusal = busy(d.pause, action, inFlight);
      if (refusal) return void msg.respond(JSON.stringify(refusal));
      inFlight++;
      const started = performance.now();
      handleCommand(msg.data, action, {
        nonces,
        lookupActor: d.lookupActor,
        parseArgs: parseActionArgs,
        run: d.run,
        isRead: isReadAction,
        log: d.log,
      })
        .then((reply) => {
          d.metrics.countCommand(action, reply.ok ? "ok" : reply.error.code, performance.now() - started);
          msg.respond(fitReply(reply, d.nc.info?.max_payload ?? 1024 * 1024));
        })
        .finally(() => inFlight--);
    },
  });
}

/** Why a command is not taken now (a scale holds writes, or too many are in flight), or null. */
function busy(pause: WritePause, action: string, inFlight: number): Reply | null {
  if (pause.active && !isReadAction(action) && action !== "cluster.scale")
    return errorReply(
      domainError("E_UNAVAILABLE", "the cluster is changing its replicas (cluster scale); retry in a few seconds"),
    );
  if (inFlight >= MAX_IN_FLIGHT) return errorReply(domainError("E_UNAVAILABLE", "membershipd is busy; retry"));
  return null;
}

/** A reply the server would refuse to carry becomes a structured error the caller can act on. */
function fitReply(reply: Reply, maxPayload: number): string {
  const text = JSON.stringify(reply);
  const size = Buffer.byteLength(text);
  if (size <= maxPayload - 512) return text;
  return JSON.stringify(
    errorReply(
      domainError(
        "E_TOO_LARGE",
        `the reply would be ${size} bytes, over the server's ${maxPayload}-byte limit; ask for fewer with limit`,
      ),
    ),
  );
}
