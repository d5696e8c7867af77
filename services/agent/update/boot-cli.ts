// The boot step as a program: bin/unibus-agent-boot runs it with the agent's own arguments before
// every start of `unibus-agent … run` (systemd's ExecStart), then execs the agent's code it chose.
// Prints the slot directory whose agent.mjs to run (or nothing: run the built-in code) and, on
// stderr, what it decided. Only `run` starts count as tries; other commands run the built-in code.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_DATA_DIR, options } from "../cli-options.ts";
import { bootRelease } from "./boot.ts";
import { releasesDir, SELF_RELEASE } from "./self.ts";

let parsed: ReturnType<
  typeof parseArgs<{ args: string[]; options: typeof options; allowPositionals: true; strict: false }>
>;
try {
  parsed = parseArgs({ args: process.argv.slice(2), options, allowPositionals: true, strict: false });
} catch {
  // A usage error is the agent's to report: it runs with the built-in code and says what is wrong.
  process.exit(0);
}
if (parsed.positionals[0] === "run" && !parsed.values.help) {
  const dataDir = resolve(String(parsed.values["data-dir"] ?? process.env.UNIBUS_AGENT_DATA_DIR ?? DEFAULT_DATA_DIR));
  let c: ReturnType<typeof bootRelease>;
  try {
    c = bootRelease(releasesDir(dataDir), SELF_RELEASE);
  } catch (err) {
    // An unreadable slot state must not keep the node from running an agent at all: the built-in one says what is wrong.
    console.error(
      `unibus-agent boot: cannot read the ${SELF_RELEASE} slots (${(err as Error).message}); running the built-in code`,
    );
    process.exit(0);
  }
  if (c.trying)
    console.error(
      `unibus-agent boot: trying ${SELF_RELEASE} ${c.trying.version} in slot ${c.slot} (${c.trying.tries_left} tries left after this one)`,
    );
  if (c.rolledBack)
    console.error(
      `unibus-agent boot: ${SELF_RELEASE} ${c.rolledBack.version} rolled back to ${c.rolledBack.to_version ?? "the built-in code"}: ${c.rolledBack.reason}`,
    );
  process.stdout.write(c.dir ?? "");
}
