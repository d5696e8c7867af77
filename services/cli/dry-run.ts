// --dry-run: the signed command and its subject, printed as a `nats req` line instead of sent.
import { nodeCommandSubject, type CommandEnvelope, type NodeAction } from "../../schemas/mod.ts";
import { inboxPrefix } from "../core/mod.ts";
import { loadIdentity, resolveCa, resolveCreds, resolveServer, type GlobalOptions } from "./context.ts";
import { print } from "./output.ts";
import { buildCommand } from "./request.ts";

/** What a sender returns instead of a result under --dry-run. */
export const DRY_RUN = Symbol("dry-run");

/** Single-quotes for POSIX shells: a ' inside becomes '\'' . */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

/** The `nats` CLI flags that reach this server as this identity (TLS CA, creds, its own inbox prefix). */
function natsCliPrefix(o: GlobalOptions): string {
  const creds = resolveCreds(o);
  const ca = resolveCa(o);
  const parts = ["nats", "--server", shellQuote(resolveServer(o))];
  if (ca) parts.push("--tlsca", shellQuote(ca));
  if (creds)
    parts.push(
      "--creds",
      shellQuote(creds),
      "--inbox-prefix",
      inboxPrefix(loadIdentity({ ...o, identity: o.identity ?? creds }).publicKey),
    );
  return parts.join(" ") + " ";
}

export function printDryRun(o: GlobalOptions, subject: string, cmd: CommandEnvelope): typeof DRY_RUN {
  const body = JSON.stringify(cmd);
  print(
    o.json,
    { subject, command: cmd },
    () => `# valid for 60 s; send with:\n${natsCliPrefix(o)}req ${subject} ${shellQuote(body)}`,
  );
  return DRY_RUN;
}

/** The command an agent verb would send to `node`, printed instead. */
export function printAgentDryRun(
  o: GlobalOptions,
  node: string,
  action: NodeAction,
  args: Record<string, unknown>,
): typeof DRY_RUN {
  return printDryRun(o, nodeCommandSubject(node, action), buildCommand(loadIdentity(o), o.as, action, args));
}
