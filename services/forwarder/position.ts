// The forwarder's own durable position per stream, in STATE_DIR/<stream>.json: the last stream
// sequence the syslog server confirmed, and the sequences of the last confirmed session. It is
// written (fsync, rename) after the server confirmed a session and before the messages are acked,
// so a message the consumer offers again after a crash in between is recognised and not sent twice.
// Only the last session can be confirmed and unacked at once: the next starts after its acks.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { Codes } from "../core/mod.ts";

const PositionFile = z
  .object({
    v: z.literal(1),
    stream: z.string(),
    /** The highest stream sequence sent in a confirmed session (0: none yet). */
    last_seq: z.number().int().nonnegative(),
    /** The last confirmed session's sequences: sent, and maybe not acked yet. */
    confirmed: z.array(z.number().int().positive()).max(100_000),
    updated_at: z.string(),
  })
  .strict();
export type Position = z.infer<typeof PositionFile>;

export class PositionError extends Error {
  readonly code = "E_FORWARDER_STATE" satisfies Codes<"E_FORWARDER_STATE">;
}

export class PositionStore {
  constructor(private readonly dir: string) {}

  private path(stream: string): string {
    return join(this.dir, `${stream}.json`);
  }

  load(stream: string): Position {
    const path = this.path(stream);
    if (!existsSync(path)) return { v: 1, stream, last_seq: 0, confirmed: [], updated_at: new Date(0).toISOString() };
    try {
      const p = PositionFile.parse(JSON.parse(readFileSync(path, "utf8")));
      if (p.stream !== stream) throw new Error(`it is the position of ${p.stream}`);
      return p;
    } catch (err) {
      throw new PositionError(
        `the forwarder's position file ${path} cannot be read (${(err as Error).message}); move it away to start from the consumer's acknowledged position`,
      );
    }
  }

  /** Written whole and synced before it replaces the old one: a crash leaves one or the other. */
  save(p: Position): void {
    const path = this.path(p.stream);
    const tmp = `${path}.tmp`;
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const fd = openSync(tmp, "w", 0o600);
      try {
        writeSync(fd, `${JSON.stringify(p)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
      const dirFd = openSync(this.dir, "r");
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    } catch (err) {
      throw new PositionError(`the forwarder cannot write its position file ${path}: ${(err as Error).message}`);
    }
  }
}
