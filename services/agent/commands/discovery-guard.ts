// Services discovery requests (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`) come from admins and
// monitors, and the agent answers on whatever reply subject the request names. nats-server lets a
// node publish one reply to each request it receives even where its deny list says no (the `resp`
// permission), so a monitor asking with reply `unibus.evt.x`, `$KV.<bucket>.<key>` or
// `$JS.API.STREAM.PURGE.<stream>` would have every agent write its answer there: into the event
// stream for good, over a projection, or purging a bucket (replayed in test/srv-discovery.test.ts).
// The agent answers discovery only on an inbox: `_INBOX.` or an identity's own `_INBOX_<key>.`.
import type { Msg, NatsConnection, SubscriptionOptions } from "@nats-io/transport-node";
import { replyGuard } from "../../core/mod.ts";

const DISCOVERY_PREFIX = "$SRV.";

/**
 * `nc` as the services library should see it: its subscriptions on `$SRV.` subjects pass on only
 * requests whose reply subject is an inbox (the others are logged and dropped); all else is `nc`'s.
 */
export function guardDiscovery(nc: NatsConnection, log: (line: string) => void): NatsConnection {
  // Logged once per 10 s with a count: a monitor's flood of such requests does not flood the log.
  const inboxOnly = replyGuard("services discovery", log);
  const subscribe = (subject: string, opts?: SubscriptionOptions) => {
    const callback = opts?.callback;
    if (!subject.startsWith(DISCOVERY_PREFIX)) return nc.subscribe(subject, opts);
    // @nats-io/services subscribes with callbacks; an iterator would get past the check, so it is refused.
    if (!callback) throw new Error(`a subscription on ${subject} without a callback would answer any reply subject`);
    return nc.subscribe(subject, {
      ...opts,
      callback: (err: Error | null, msg: Msg) => {
        if (!err && !inboxOnly(msg.subject, msg.reply)) return;
        callback(err, msg);
      },
    });
  };
  return new Proxy(nc, {
    get(target, prop) {
      if (prop === "subscribe") return subscribe;
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
