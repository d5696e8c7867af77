// The agent's command endpoint on NATS: a service of the NATS services protocol (so `$SRV.PING`,
// `$SRV.INFO` and `$SRV.STATS` find it, and `nats micro ls` lists it) with one endpoint per action
// on `unibus.cmd.node.<node>.<action>`. A plain subscription on `unibus.cmd.node.<node>.>` answers
// only subjects that are no action (E_UNKNOWN_ACTION), so a mistyped action gets a reply, not
// "no responders"; it stays silent for the others, so each request gets exactly one reply.
import { Svcm, type Service, type ServiceMsg } from "@nats-io/services";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  isNodeAction,
  NODE_READ_ACTIONS,
  nodeCommandSubject,
  nodeEndpointName,
  NodeActions,
  type Reply,
} from "../../../schemas/mod.ts";
import { domainError, errorReply, replyGuard } from "../../core/mod.ts";
import { guardDiscovery } from "./discovery-guard.ts";
import { completion, describe, emit, handleNodeCommand, type CommandEventSink, type HandlerContext } from "./handle.ts";
import { Lanes } from "./lanes.ts";
import type { NodeOps } from "./ops.ts";
import { INTERRUPTED, type CommandRecord } from "./record.ts";
import type { TrustCheck } from "./trust.ts";

export const AGENT_SERVICE_NAME = "unibus-agent";
/** Beyond this many commands at once the agent answers E_UNAVAILABLE rather than queue without end. */
export const MAX_IN_FLIGHT = 256;

export interface NodeCommandServiceOptions {
  node: string;
  /** The agent's version; the services protocol wants semver, so anything else is announced as 0.0.0 (and kept in metadata). */
  version: string;
  ops: NodeOps;
  trust: TrustCheck;
  record: CommandRecord;
  onEvent: CommandEventSink;
  now?: () => number;
  log?: (line: string) => void;
  maxInFlight?: number;
}

export interface NodeCommandService {
  readonly service: Service;
  /** Commands being handled right now. */
  readonly inFlight: number;
  /** Stops taking commands and waits for those in hand to be answered. */
  stop(): Promise<void>;
}

export async function startNodeCommandService(
  nc: NatsConnection,
  o: NodeCommandServiceOptions,
): Promise<NodeCommandService> {
  const ctx: HandlerContext = {
    node: o.node,
    ops: o.ops,
    trust: o.trust,
    record: o.record,
    onEvent: o.onEvent,
    lanes: new Lanes(),
    now: o.now ?? Date.now,
    log: o.log ?? (() => {}),
  };
  await settleInterrupted(ctx);
  const pending = new Set<Promise<void>>();
  const limit = o.maxInFlight ?? MAX_IN_FLIGHT;
  const inboxOnly = replyGuard("commands", ctx.log);
  const serve = (msg: Msg | ServiceMsg, action: string): void => {
    if (!inboxOnly(msg.subject, msg.reply)) return;
    if (pending.size >= limit)
      return respond(
        nc,
        msg,
        errorReply(domainError("E_UNAVAILABLE", "the agent has too many commands in hand; retry")),
        ctx,
      );
    const done = handleNodeCommand(msg.data, action, ctx).then((reply) => respond(nc, msg, reply, ctx));
    pending.add(done);
    void done.finally(() => pending.delete(done));
  };

  // @nats-io/services 3.0.0-25 (the newest published) carries its own older nats-core; the
  // connection works with it at run time, only the two copies' types differ.
  // Discovery is answered only on an inbox (discovery-guard.ts): the reply would get past the node's deny list.
  const guarded = guardDiscovery(nc, ctx.log);
  const service = await new Svcm(guarded as unknown as ConstructorParameters<typeof Svcm>[0]).add({
    name: AGENT_SERVICE_NAME,
    version: semverOr(o.version),
    description: `unibus node agent of ${o.node}: signed commands`,
    metadata: { node: o.node, version: o.version },
  });
  for (const action of NodeActions) {
    service.addEndpoint(nodeEndpointName(action), {
      subject: nodeCommandSubject(o.node, action),
      metadata: { kind: NODE_READ_ACTIONS.has(action) ? "read" : "write" },
      handler: (err, msg) => (err ? ctx.log(`endpoint ${action}: ${err.message}`) : serve(msg, action)),
    });
  }
  const prefix = `unibus.cmd.node.${o.node}.`;
  const fallback: Subscription = nc.subscribe(`${prefix}>`, {
    // Not the endpoints' queue group "q": the server picks one member of a group per message across
    // all subjects that match, so sharing the name would take known actions away from their endpoints.
    queue: "unknown-action",
    callback: (err, msg) => {
      if (err) return ctx.log(`unknown-action listener: ${err.message}`);
      const action = msg.subject.slice(prefix.length);
      if (!isNodeAction(action)) serve(msg, action);
    },
  });

  return {
    service,
    get inFlight() {
      return pending.size;
    },
    async stop() {
      await Promise.allSettled([service.stop(), fallback.drain()]);
      await Promise.allSettled([...pending]);
    },
  };
}

/**
 * Commands a previous run accepted and did not finish: their CommandReceived went out, so their
 * CommandCompleted must too, with E_INTERRUPTED; a retry gets the same answer from the record.
 */
async function settleInterrupted(ctx: HandlerContext): Promise<void> {
  const reply = errorReply(INTERRUPTED);
  for (const entry of ctx.record.interrupted()) {
    ctx.record.complete(entry.id, reply);
    await emit(
      ctx,
      "CommandCompleted",
      completion(ctx.node, entry, reply, Math.max(0, Math.round(ctx.now() - entry.at))),
    );
  }
}

/** Sends the reply; one larger than the server takes becomes E_TOO_LARGE, and a lost connection is only logged. */
function respond(nc: NatsConnection, msg: Msg | ServiceMsg, reply: Reply, ctx: HandlerContext): void {
  let body = JSON.stringify(reply);
  const max = nc.info?.max_payload ?? Number.POSITIVE_INFINITY;
  // A UTF-16 unit is at most 3 bytes of UTF-8: most replies are sized without encoding them.
  const size = body.length * 3 > max ? Buffer.byteLength(body) : 0;
  if (size > max) {
    body = JSON.stringify(
      errorReply(
        domainError(
          "E_TOO_LARGE",
          `the reply would be ${size} bytes, over the server's ${max}-byte limit; ask for fewer lines`,
        ),
      ),
    );
  }
  try {
    msg.respond(body);
  } catch (err) {
    ctx.log(`could not reply on ${msg.subject}: ${describe(err)}`);
  }
}

const SEMVER = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

function semverOr(version: string): string {
  return SEMVER.test(version) ? version : "0.0.0";
}
