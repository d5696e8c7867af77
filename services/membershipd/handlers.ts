// The actions membershipd serves, each with its args' type (from the schemas it is parsed with),
// and the handler type every area's file (users, rooms, members, fleet, nodes, cluster, releases,
// rollouts, vault) builds its table from: a handler takes exactly its action's parsed args.
import type { z } from "zod";
import { MembershipActionArgs, NodeReportArgs, VaultActionArgs, type CommandEnvelope } from "../../schemas/mod.ts";
import { domainError, zodMessage, type DomainError, type Result } from "../core/mod.ts";

/** Every action's args schema: the operators', the vault's and the agents' (node.report, node.trust). */
export const ServedActionArgs = { ...MembershipActionArgs, ...VaultActionArgs, ...NodeReportArgs } as const;
export type ServedAction = keyof typeof ServedActionArgs;
/** An action's args once parsed (defaults filled in): ArgsOf<A> for the operators' actions. */
export type ServedArgs<A extends ServedAction> = z.output<(typeof ServedActionArgs)[A]>;

export type Handler<A extends ServedAction> = (
  args: ServedArgs<A>,
  cmd: CommandEnvelope,
) => Promise<unknown | DomainError>;
/** One handler per action of `A`: a missing one, or one taking other args, does not compile. */
export type Handlers<A extends ServedAction> = { [K in A]: Handler<K> };

/** A command's action with its parsed args: what the pipeline hands `run`. */
export type ParsedCommand<A extends ServedAction = ServedAction> = { [K in A]: { action: K; args: ServedArgs<K> } }[A];

export function isServedAction(action: string): action is ServedAction {
  return Object.hasOwn(ServedActionArgs, action);
}

/** The same table seen as a mapped type, so that a lookup by a generic action keeps its args' type. */
const argsSchemas: { [A in ServedAction]: z.ZodType<ServedArgs<A>> } = ServedActionArgs;

/** `action`'s args parsed with its schema; undefined when membershipd serves no such action. */
export function parseCommandArgs(action: string, args: unknown): Result<ParsedCommand> | undefined {
  return isServedAction(action) ? parseArgsOf(action, args) : undefined;
}

/** `action`'s args parsed with its schema, for a table that serves `action`. */
export function parseArgsOf<A extends ServedAction>(action: A, args: unknown): Result<ParsedCommand<A>> {
  const r = argsSchemas[action].safeParse(args);
  return r.success
    ? { ok: true, value: { action, args: r.data } }
    : { ok: false, error: domainError("E_BAD_REQUEST", `bad arguments for ${action}: ${zodMessage(r.error)}`) };
}

/** Runs the handler of a parsed command: handlers[action] takes exactly that action's args. */
export function dispatch<A extends ServedAction>(
  handlers: Handlers<A>,
  parsed: ParsedCommand<A>,
  cmd: CommandEnvelope,
): Promise<unknown | DomainError> {
  const handler: Handler<A> = handlers[parsed.action];
  return handler(parsed.args, cmd);
}
