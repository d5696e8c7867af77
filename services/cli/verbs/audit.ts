// `unibus audit replay|verify`: the whole stream read once and checked (services/cli/audit.ts).
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { auditReplay, auditVerify, type AuditReadAccess } from "../audit.ts";
import type { Session } from "../session.ts";
import { EXIT, print, table, usageError } from "../output.ts";
import { defineVerb } from "../verb.ts";
import { checkpointVerb, followCheckpointsVerb, verifyCheckpointVerb } from "./audit-checkpoint.ts";
import { auditWriters } from "../audit-writers.ts";
import { describeFinding } from "../../core/mod.ts";

const READS_ONLY = "reads the stream; there is no command to print with --dry-run";
/** How long `audit.read` may take before the read goes by message gets (membershipd hung, not down). */
const AUDIT_READ_TIMEOUT_MS = 5_000;

/** The audit consumer membershipd makes for this identity; a word on stderr, once, when the read cannot use it. */
function auditRead(nc: NatsConnection, sendWithin: Session["sendWithin"], verb: string): AuditReadAccess {
  return {
    nc,
    open: (fromSeq) => sendWithin(AUDIT_READ_TIMEOUT_MS)("audit.read", { from_seq: fromSeq }),
    onFallback: (why) => process.stderr.write(`unibus: audit ${verb}: ${why}\n`),
  };
}

export const AUDIT_VERBS = [
  defineVerb({
    words: ["audit", "replay"],
    usage: "",
    help:
      "rebuild every projection from the stream, diff against KV; events that fail their checks are left out as the projector " +
      "leaves them out, and listed; exit 1 when they differ or any event was left out",
    flags: {},
    dryRun: READS_ONLY,
    run: async ({ o, connection, sendWithin }) => {
      const nc = await connection();
      const r = await auditReplay(nc, await jetstreamManager(nc), !o.json, auditRead(nc, sendWithin, "replay"));
      print(o.json, r, () => {
        const head = `replayed ${r.events} events in ${r.seconds.toFixed(2)} s (${r.rate}/s)${r.projections_caught_up ? "" : "; warning: membershipd's projector had not caught up"}`;
        const left = r.quarantined.length
          ? `\n${r.quarantined.length} event(s) quarantined (left out of the projections):\n${r.quarantined.map((f) => `  ${describeFinding(f)}`).join("\n")}`
          : "";
        if (r.differences.length === 0) return `${head}${left}\nno differences: every KV bucket matches the stream`;
        const rows = r.differences.map((d) => ({ ...d, expected: d.expected ?? null, actual: d.actual ?? null }));
        return `${head}${left}\n${r.differences.length} difference(s):\n${table(rows, ["bucket", "key", "problem", "expected", "actual"])}`;
      });
      return r.differences.length || r.quarantined.length ? EXIT.failed : EXIT.ok;
    },
  }),
  defineVerb({
    words: ["audit", "verify"],
    usage: "[--trust KEY]… [--checkpoint FILE [--since-checkpoint]]",
    help:
      "check every signature and every aggregate's hash chain; exit 1 on a finding. With --checkpoint (a file `audit checkpoint` " +
      "wrote), also prove the stream still extends it: exit 1 when any event at or before it was changed, removed, reordered or " +
      "cut, even when re-signed with the writer key. --since-checkpoint checks only the events after it, their chains continuing " +
      "from its heads (proven against its heads digest). The checkpoint must be signed by your identity, a --trust key or the stream's writer",
    flags: {
      trust: { type: "string", multiple: true },
      checkpoint: { type: "string" },
      "since-checkpoint": { type: "boolean" },
    },
    dryRun: READS_ONLY,
    run: async ({ flags, o, connection, sendWithin }) => {
      if (flags["since-checkpoint"] && !flags.checkpoint) usageError("--since-checkpoint needs --checkpoint FILE");
      if (flags.checkpoint) return await verifyCheckpointVerb(flags.checkpoint, flags, o, connection);
      const nc = await connection();
      const r = await auditVerify(
        await jetstreamManager(nc),
        flags.trust ?? [],
        !o.json,
        undefined,
        auditRead(nc, sendWithin, "verify"),
      );
      print(o.json, r, () => {
        const head = `verified ${r.events} events`;
        if (r.findings.length === 0) return `${head}: every signature and hash chain is intact`;
        return `${head}: ${r.findings.length} problem(s)\n${table(
          r.findings.map((f) => ({ ...f })),
          ["seq", "problem", "detail"],
        )}`;
      });
      return r.findings.length ? EXIT.failed : EXIT.ok;
    },
  }),
  checkpointVerb,
  followCheckpointsVerb,
  defineVerb({
    words: ["audit", "writers"],
    usage: "[--trust KEY]…",
    help: "the keys trusted to sign events: the genesis key and every key added or retired since, when and by whom",
    flags: { trust: { type: "string", multiple: true } },
    dryRun: READS_ONLY,
    run: async ({ flags, o, connection }) => {
      const nc = await connection();
      const r = await auditWriters(await jetstreamManager(nc), flags.trust ?? []);
      print(o.json, r, () => {
        const rows = r.writers.map((w) => ({
          key: w.key,
          status: w.trusted ? "trusted" : `retired at ${w.retired_seq} by ${w.retired_by}: ${w.reason}`,
          added: `${w.added_at} (seq ${w.added_seq})`,
          by: `${w.added_by} (signed by ${w.signed_by === w.key ? "itself" : w.signed_by})`,
          note: w.note,
        }));
        const bad = r.quarantined.map((f) => `  ${describeFinding(f)}`).join("\n");
        return `${table(rows, ["key", "status", "added", "by", "note"])}${bad ? `\nquarantined (changed nothing):\n${bad}` : ""}`;
      });
      return r.writers.length === 0 || r.quarantined.length ? EXIT.failed : EXIT.ok;
    },
  }),
];
