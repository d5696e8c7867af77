// `unibus audit replay|verify`: the whole stream read once and checked (services/cli/audit.ts).
import { jetstreamManager } from "@nats-io/jetstream";
import { auditReplay, auditVerify } from "../audit.ts";
import { EXIT, print, table } from "../output.ts";
import { defineVerb } from "../verb.ts";

const READS_ONLY = "reads the stream; there is no command to print with --dry-run";

export const AUDIT_VERBS = [
  defineVerb({
    words: ["audit", "replay"],
    usage: "",
    help: "rebuild every projection from the stream, diff against KV; exit 1 when they differ",
    flags: {},
    dryRun: READS_ONLY,
    run: async ({ o, connection }) => {
      const nc = await connection();
      const r = await auditReplay(nc, await jetstreamManager(nc), !o.json);
      print(o.json, r, () => {
        const head = `replayed ${r.events} events in ${r.seconds.toFixed(2)} s (${r.rate}/s)${r.projections_caught_up ? "" : "; warning: membershipd's projector had not caught up"}`;
        if (r.differences.length === 0) return `${head}\nno differences: every KV bucket matches the stream`;
        const rows = r.differences.map((d) => ({ ...d, expected: d.expected ?? null, actual: d.actual ?? null }));
        return `${head}\n${r.differences.length} difference(s):\n${table(rows, ["bucket", "key", "problem", "expected", "actual"])}`;
      });
      return r.differences.length ? EXIT.failed : EXIT.ok;
    },
  }),
  defineVerb({
    words: ["audit", "verify"],
    usage: "[--trust KEY]…",
    help: "check every signature and every aggregate's hash chain; exit 1 on a finding",
    flags: { trust: { type: "string", multiple: true } },
    dryRun: READS_ONLY,
    run: async ({ flags, o, connection }) => {
      const nc = await connection();
      const r = await auditVerify(await jetstreamManager(nc), flags.trust ?? [], !o.json);
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
];
