// `unibus backup create --out FILE --recipient X…`: membershipd writes a backup of the running
// control plane into its backups directory (backup.create, one long request), and the CLI then
// downloads it in pieces (backup.fetch) to FILE: 0600, under a temporary name renamed when
// complete, with a progress line on stderr and the size at the end.
import { open, rename, unlink } from "node:fs/promises";
import { BACKUP_FETCH_MAX_BYTES, CurvePublicKey } from "../../../schemas/mod.ts";
import { DRY_RUN } from "../dry-run.ts";
import { CliError, print, usageError } from "../output.ts";
import type { Send } from "../session.ts";
import { defineVerb } from "../verb.ts";

/** What backup.create answers, as far as the download needs it. */
interface Made {
  name: string;
  made_by: string;
  bytes: number;
}

/** Writing a backup reads the whole event stream: far longer than any other command may take. */
const CREATE_TIMEOUT_MS = 30 * 60_000;

const MiB = (n: number) => `${(n / 1024 ** 2).toFixed(1)} MiB`;

/** A line on stderr: rewritten in place on a terminal, every few seconds otherwise, always at the end. */
function downloadProgress(name: string) {
  const tty = process.stderr.isTTY;
  let last = 0;
  return (done: number, total: number, final = false) => {
    const now = Date.now();
    if (!final && now - last < (tty ? 200 : 3000)) return;
    last = now;
    const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
    const text = `backup create: ${name}: ${MiB(done)} of ${MiB(total)} (${pct} %)`;
    process.stderr.write(tty ? `\r${text}${final ? "\n" : ""}` : `${text}\n`);
  };
}

/** How often a fetch that reached another membershipd of the cluster than the backup's is sent again. */
const WRONG_SERVER_TRIES = 50;

/** A piece of the backup from the membershipd that wrote it (another one of the cluster may answer first). */
async function fetchPiece(send: Send, args: Record<string, unknown>): Promise<{ data: string; eof: boolean }> {
  for (let tries = 1; ; tries++) {
    try {
      return await send("backup.fetch", args);
    } catch (err) {
      if (!(err instanceof CliError) || err.code !== "E_WRONG_NODE" || tries >= WRONG_SERVER_TRIES) throw err;
    }
  }
}

/** The most a fetch may ask for: what fits the server's payload limit once in base64 and JSON. */
function pieceBytes(maxPayload: number | undefined): number {
  if (!maxPayload) return BACKUP_FETCH_MAX_BYTES;
  return Math.max(1024, Math.min(BACKUP_FETCH_MAX_BYTES, Math.floor(((maxPayload - 4096) * 3) / 4)));
}

/** Downloads the backup `made` names to `out` through backup.fetch; the bytes written. */
async function download(send: Send, made: Made, length: number, out: string, quiet: boolean): Promise<number> {
  const { name, bytes: size } = made;
  const tmp = `${out}.${process.pid}.tmp`;
  const fh = await open(tmp, "wx", 0o600);
  const show = quiet ? null : downloadProgress(name);
  let offset = 0;
  try {
    for (;;) {
      const r = await fetchPiece(send, { name, server: made.made_by, offset, length });
      const data = Buffer.from(r.data, "base64");
      await fh.write(data, 0, data.length, offset);
      offset += data.length;
      show?.(offset, size);
      if (r.eof) break;
      if (data.length === 0) throw new CliError("E_BAD_REPLY", `membershipd sent no bytes of ${name} at ${offset}`);
    }
    if (offset !== size)
      throw new CliError("E_BAD_REPLY", `${name} came to ${offset} bytes, but membershipd wrote ${size}`);
    show?.(offset, size, true);
    await fh.sync();
    await fh.close();
    await rename(tmp, out);
    return offset;
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

export const BACKUP_CREATE_VERBS = [
  defineVerb({
    words: ["backup", "create"],
    usage: "--out FILE --recipient X…",
    help:
      "a consistent backup of the running control plane (events, vault shares, releases, and the keys a restore needs), " +
      "encrypted to the operator key X… (unibus backup keygen) and signed by membershipd; written to FILE (0600), " +
      "with a copy kept in membershipd's backups directory",
    flags: { out: { type: "string" }, recipient: { type: "string" } },
    dryRun: true,
    run: async ({ args, flags, o, givenTimeoutMs, sendWithin, send, connection }) => {
      if (args.length) usageError("backup create takes no arguments; expected --out FILE --recipient X…");
      if (!flags.out) usageError("expected backup create --out FILE --recipient X…");
      if (!flags.recipient || !CurvePublicKey.safeParse(flags.recipient).success)
        usageError("--recipient must be an X25519 public key (X…), as unibus backup keygen prints it");
      const quiet = o.json || o.dryRun;
      if (!quiet) process.stderr.write("backup create: membershipd is writing the backup…\n");
      const made = await sendWithin(givenTimeoutMs ?? CREATE_TIMEOUT_MS)("backup.create", {
        recipient: flags.recipient,
      });
      if (made === DRY_RUN) return 0;
      const length = pieceBytes((await connection()).info?.max_payload);
      const bytes = await download(send, made, length, flags.out, quiet);
      print(o.json, { ...made, file: flags.out }, () =>
        [
          `wrote ${flags.out}: ${bytes} bytes (${MiB(bytes)}), ${made.events} events, sha256 ${made.sha256}`,
          ...made.streams.map(
            (s: any) => `  ${s.name}: ${s.messages} messages, sequences ${s.first_seq}..${s.last_seq}`,
          ),
          `membershipd keeps a copy: ${made.name}`,
        ].join("\n"),
      );
      return 0;
    },
  }),
];
