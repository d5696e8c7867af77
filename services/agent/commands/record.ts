// The commands this agent accepted that change something, on disk (0600, JSON lines): keyed by
// command id and nonce, with the envelope's fingerprint and, once it ended, the reply. A retry of
// the same command is answered from here and never runs twice, also across a restart; a command
// the agent was running when it died is answered with E_INTERRUPTED rather than run again.
// Each line is flushed to the disk (fdatasync) before the command runs and before the reply goes out.
import { closeSync, existsSync, fdatasyncSync, openSync, writeSync } from "node:fs";
import type { CommandEnvelope, Reply } from "../../../schemas/mod.ts";
import { replaceSecretFile, readSecretFile } from "../../bus/mod.ts";
import { commandFingerprint, domainError, errorReply } from "../../core/mod.ts";
import { doneLine, isExpired, parseRecord, recvLine, renderRecord, type RecordEntry } from "./record-lines.ts";

export interface CommandRecordOptions {
  now?: () => number;
  /** fdatasync after each line (default true); tests that count thousands of commands may turn it off. */
  sync?: boolean;
}

/** What the record knows of a command: nothing, the same command (its reply, maybe still coming), or a clash. */
export type Prior = { kind: "none" } | { kind: "same"; reply: Reply | Promise<Reply> } | { kind: "clash" };

export const INTERRUPTED = domainError("E_INTERRUPTED", "the agent restarted while running this command; check status");

const PRUNE_EVERY_MS = 10_000;

export class CommandRecord {
  private readonly byId = new Map<string, RecordEntry>();
  private readonly byNonce = new Map<string, RecordEntry>();
  /** Commands running in this process: a retry waits for the first one's reply. */
  private readonly running = new Map<string, { promise: Promise<Reply>; resolve: (r: Reply) => void }>();
  private readonly now: () => number;
  private readonly sync: boolean;
  private fd: number | null = null;
  private linesSinceCompact = 0;
  private lastPrune = 0;

  /** Reads the file (a torn last line is skipped), forgets what expired and rewrites it compactly. */
  constructor(
    readonly path: string,
    opts: CommandRecordOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.sync = opts.sync ?? true;
    const text = existsSync(path) ? readSecretFile(path).toString("utf8") : "";
    const now = this.now();
    for (const e of parseRecord(text)) if (!isExpired(e, now)) this.index(e);
    this.compact();
  }

  /** Looks the command up by id and by nonce; the fingerprint is computed only when one of them is known. */
  find(command: CommandEnvelope): Prior {
    const entry = this.byId.get(command.id) ?? this.byNonce.get(command.nonce);
    if (!entry) return { kind: "none" };
    if (entry.id !== command.id || entry.nonce !== command.nonce || entry.fp !== commandFingerprint(command))
      return { kind: "clash" };
    return { kind: "same", reply: entry.reply ?? this.running.get(entry.id)?.promise ?? errorReply(INTERRUPTED) };
  }

  /**
   * Claims the command and writes it down before it runs. `none`: the caller runs it and must call
   * `complete`; anything else: it was claimed meanwhile, answer as `find` says.
   */
  begin(command: CommandEnvelope): Prior {
    const prior = this.find(command);
    if (prior.kind !== "none") return prior;
    this.prune();
    const entry: RecordEntry = {
      id: command.id,
      nonce: command.nonce,
      fp: commandFingerprint(command),
      ts: Date.parse(command.ts),
      at: this.now(),
      action: command.action,
      actor: command.actor,
      reply: null,
    };
    this.append(recvLine(entry));
    this.index(entry);
    let resolve!: (r: Reply) => void;
    const promise = new Promise<Reply>((r) => (resolve = r));
    this.running.set(entry.id, { promise, resolve });
    return prior;
  }

  /** Writes the reply down; waiting retries get it too. Idempotent. */
  complete(id: string, reply: Reply): void {
    const entry = this.byId.get(id);
    if (!entry || entry.reply) return;
    entry.reply = reply;
    const waiting = this.running.get(id);
    this.running.delete(id);
    waiting?.resolve(reply);
    this.append(doneLine(id, this.now(), reply));
  }

  /** Commands a previous run accepted and never finished (each is answered E_INTERRUPTED until completed). */
  interrupted(): RecordEntry[] {
    return [...this.byId.values()].filter((e) => e.reply === null && !this.running.has(e.id));
  }

  get size(): number {
    return this.byId.size;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private index(e: RecordEntry): void {
    this.byId.set(e.id, e);
    this.byNonce.set(e.nonce, e);
  }

  /** Forgets expired entries (never one running here); at most every 10 s unless forced. */
  private prune(force = false): void {
    const now = this.now();
    if (!force && now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    for (const e of this.byId.values()) {
      if (!isExpired(e, now) || this.running.has(e.id)) continue;
      this.byId.delete(e.id);
      this.byNonce.delete(e.nonce);
    }
  }

  private append(line: string): void {
    if (++this.linesSinceCompact > Math.max(1000, 4 * this.byId.size)) this.compact();
    if (this.fd === null) this.fd = openSync(this.path, "a", 0o600);
    writeSync(this.fd, line);
    if (this.sync) fdatasyncSync(this.fd);
  }

  /** Rewrites the file as the live entries (atomically: a crash keeps the old one) and reopens it. */
  private compact(): void {
    this.close();
    this.prune(true);
    replaceSecretFile(this.path, renderRecord(this.byId.values()));
    this.linesSinceCompact = 0;
  }
}
