// What every verb runs with: the global options, one lazily opened NATS connection, and senders
// that sign a command and send it (or print it under --dry-run). main.ts opens one per run.
import type { NatsConnection } from "@nats-io/transport-node";
import { MembershipActionArgs, isMembershipAction, type Reply } from "../../schemas/mod.ts";
import { loadIdentity, openConnection, type GlobalOptions } from "./context.ts";
import { DRY_RUN, printDryRun } from "./dry-run.ts";
import { EXIT, print, usageError } from "./output.ts";
import { MEMBERSHIP_PREFIX, buildCommand, resultOf, sendCommand } from "./request.ts";

/** A membershipd command by its action: its result, DRY_RUN under --dry-run, or a CliError. */
export type Send = (action: string, args: Record<string, unknown>) => Promise<any>;

export interface Session {
  o: GlobalOptions;
  /** --timeout when it was given: verbs with their own default timeout use it only then. */
  givenTimeoutMs: number | undefined;
  connection(): Promise<NatsConnection>;
  send: Send;
  /** A sender whose requests wait `timeoutMs` instead of o.timeoutMs. */
  sendWithin(timeoutMs: number): Send;
  /** Any command subject, the reply unopened (`req`). */
  request(subject: string, action: string, args: Record<string, unknown>): Promise<Reply | typeof DRY_RUN>;
  close(): Promise<void>;
}

export function openSession(o: GlobalOptions, givenTimeoutMs: number | undefined): Session {
  let nc: NatsConnection | null = null;
  const connection = async () => (nc ??= await openConnection(o));
  /** Signs one command and sends it, or prints it with --dry-run. */
  const signAndSend = async (
    subject: string,
    action: string,
    args: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<Reply | typeof DRY_RUN> => {
    const cmd = buildCommand(loadIdentity(o), o.as, action, args);
    if (o.dryRun) return printDryRun(o, subject, cmd);
    return await sendCommand(await connection(), subject, cmd, timeoutMs);
  };
  const sendWithin =
    (timeoutMs: number): Send =>
    async (action, args) => {
      // Checked here against the wire contract, so a bad argument is a usage error before anything is signed.
      if (isMembershipAction(action)) {
        const check = MembershipActionArgs[action].safeParse(args);
        if (!check.success)
          usageError(check.error.issues.map((i) => `${i.path.join(".") || "args"}: ${i.message}`).join("; "));
      }
      const reply = await signAndSend(`${MEMBERSHIP_PREFIX}${action}`, action, args, timeoutMs);
      return reply === DRY_RUN ? DRY_RUN : resultOf(reply);
    };
  return {
    o,
    givenTimeoutMs,
    connection,
    send: sendWithin(o.timeoutMs),
    sendWithin,
    request: (subject, action, args) => signAndSend(subject, action, args, o.timeoutMs),
    close: async () => {
      await nc?.close();
    },
  };
}

/** Prints a verb's result (JSON with --json, else `human`); nothing when --dry-run printed the command. */
export function show(o: GlobalOptions, result: any, human: (r: any) => string): number {
  if (result === DRY_RUN) return EXIT.ok;
  print(o.json, result, () => human(result));
  return EXIT.ok;
}
