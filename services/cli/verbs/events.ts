// `unibus events tail`: the newest events straight from the stream, then new ones with --follow.
// Each is checked the way every reader checks it (checkEvent) and a quarantined one is shown as
// such, never as if it had happened. The window starts mid-stream: an aggregate's first event in
// it is checked for everything but its chain (its head before the window is not read).
import { jetstreamManager } from "@nats-io/jetstream";
import { EVENTS_STREAM, TRUST_SUBJECT, foldTrust, lastSequence, streamRead } from "../../bus/mod.ts";
import { TrustedWriters, VerifiedBatches, checkEvent, describeFinding, isTrustEvent } from "../../core/mod.ts";
import { EXIT, usageError } from "../output.ts";
import { defineVerb } from "../verb.ts";

export const EVENTS_VERBS = [
  defineVerb({
    words: ["events", "tail"],
    usage: "[--lines N] [--follow]",
    help: "the newest events (20 unless --lines), then new ones as they come with --follow",
    flags: { lines: { type: "string" }, follow: { type: "boolean" } },
    dryRun: "reads the event stream; there is no command to print with --dry-run",
    run: async ({ flags, o, connection }) => {
      const nc = await connection();
      const jsm = await jetstreamManager(nc);
      const last = await lastSequence(jsm);
      const lines = Number(flags.lines ?? 20);
      if (!Number.isInteger(lines) || lines < 0) usageError("--lines takes a whole number");
      const from = Math.max(1, last - lines + 1);
      if (!flags.follow && last === 0) return EXIT.ok;
      const done = new AbortController();
      const stop = new Promise<void>((r) => process.once("SIGINT", () => (done.abort(), r())));
      // By message gets, polling at the end with --follow: no consumer (only membershipd makes those).
      const iter = streamRead(
        jsm,
        EVENTS_STREAM,
        flags.follow ? { fromSeq: from, follow: true, signal: done.signal } : { fromSeq: from, untilSeq: last },
      );
      const writers = new TrustedWriters();
      if (last > 0)
        await foldTrust(writers, null, streamRead(jsm, EVENTS_STREAM, { filter: TRUST_SUBJECT, untilSeq: last }));
      const heads = new Map<string, string>();
      const batches = new VerifiedBatches();
      const printed = (async () => {
        for await (const m of iter) {
          const c = checkEvent(m.seq, m.subject, m.data, writers, heads.get(m.subject), null, batches);
          if (!c.ok) {
            if (o.json) process.stdout.write(JSON.stringify({ seq: m.seq, quarantined: c.finding }) + "\n");
            else process.stdout.write(`${String(m.seq).padStart(6)}  QUARANTINED  ${describeFinding(c.finding)}\n`);
            continue;
          }
          heads.set(m.subject, c.hash);
          if (isTrustEvent(c.event)) writers.observe(c.event, m.seq);
          const e = c.event;
          if (o.json) process.stdout.write(JSON.stringify({ seq: m.seq, ...e }) + "\n");
          else
            process.stdout.write(
              `${String(m.seq).padStart(6)}  ${e.ts}  ${`${e.kind}/${e.aggregate}`.padEnd(24)} ${e.type.padEnd(18)} by ${e.actor.id}  ${JSON.stringify(e.data)}\n`,
            );
        }
      })();
      await Promise.race([printed, stop]);
      return EXIT.ok;
    },
  }),
];
