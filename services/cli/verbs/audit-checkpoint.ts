// `unibus audit checkpoint`, and the --checkpoint part of `unibus audit verify`
// (services/cli/audit-checkpoint.ts).
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  followCheckpoints,
  makeCheckpoint,
  readCheckpointFile,
  refuseExisting,
  showCheckpoint,
  showCheckpointReport,
  verifySinceCheckpoint,
  verifyWithCheckpoint,
} from "../audit-checkpoint.ts";
import { loadIdentity, type GlobalOptions } from "../context.ts";
import { CliError, usageError } from "../output.ts";
import { defineVerb } from "../verb.ts";

export const checkpointVerb = defineVerb({
  words: ["audit", "checkpoint"],
  usage: "[--out FILE]",
  help:
    "read the whole stream and print a short statement of it, signed with your identity: its last sequence, a running hash " +
    "over every stored event in order, the digest of every aggregate's chain head, the trusted writers. Keep it off this " +
    "machine; `audit verify --checkpoint FILE` later proves the stream still extends it. --out FILE writes it there (0644, " +
    "never over an existing file); --json prints it as JSON. A stream with problems gets a warning, and its checkpoint all the same",
  flags: { out: { type: "string" } },
  dryRun: "reads the stream and signs locally; there is no command to print with --dry-run",
  run: async ({ flags, o, connection }) => {
    // The identity first: no reason to read the whole stream for a statement nobody can sign.
    const signer = loadIdentity(o);
    refuseExisting(flags.out);
    const jsm = await jetstreamManager(await connection());
    const { checkpoint, findings } = await makeCheckpoint(jsm, signer, !o.json);
    return showCheckpoint(checkpoint, findings, { json: o.json, out: flags.out });
  },
});

/** The auditor's own key when they have an identity; verifying needs none. */
function ownKey(o: GlobalOptions): string | null {
  try {
    return loadIdentity(o).publicKey;
  } catch (err) {
    if (err instanceof CliError) return null;
    throw err;
  }
}

export async function verifyCheckpointVerb(
  file: string,
  flags: { trust?: string[]; "since-checkpoint"?: boolean },
  o: GlobalOptions,
  connection: () => Promise<NatsConnection>,
): Promise<number> {
  const c = readCheckpointFile(file);
  const jsm = await jetstreamManager(await connection());
  const opts = { pinned: flags.trust ?? [], ownKey: ownKey(o), showProgress: !o.json };
  const started = performance.now();
  const r = flags["since-checkpoint"]
    ? await verifySinceCheckpoint(jsm, c, opts)
    : await verifyWithCheckpoint(jsm, c, opts);
  return showCheckpointReport({ ...r, seconds: Number(((performance.now() - started) / 1000).toFixed(3)) }, o.json);
}

export const followCheckpointsVerb = defineVerb({
  words: ["audit", "checkpoints"],
  usage: "[--dir DIR] [--count N]",
  help:
    "wait for the signed checkpoints membershipd publishes (its --checkpoint-interval) and print each as one line; with --dir, " +
    "also keep each in DIR as <stream>-<last_seq>.json (0644, never over an existing file). One whose signature does not verify " +
    "is reported on stderr and not kept. --count N stops after N. Needs only a monitor identity: run it on another machine",
  flags: { dir: { type: "string" }, count: { type: "string" } },
  dryRun: "only listens; there is no command to print with --dry-run",
  run: async ({ flags, o, connection }) => {
    const count = flags.count === undefined ? Infinity : Number(flags.count);
    if (!Number.isInteger(count) || count < 1) usageError("--count takes a whole number of checkpoints, 1 or more");
    const nc = await connection();
    return await followCheckpoints(nc, { dir: flags.dir, count, json: o.json });
  },
});
