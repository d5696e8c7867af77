// `node --import tsx services/agent/update/boot-cli.ts <releases dir> [release]`: the boot step as
// a program (a systemd unit's wrapper runs it, then execs the printed directory's agent). Prints
// the slot directory to run (or nothing: run the built-in code) and, on stderr, what it decided.
import { bootRelease } from "./boot.ts";

const [dir, release = "unibus-agent"] = process.argv.slice(2);
if (!dir) {
  console.error("usage: boot-cli.ts <releases dir> [release]");
  process.exit(2);
}
const c = bootRelease(dir, release);
if (c.trying) console.error(`boot: trying ${release} ${c.trying.version} in slot ${c.slot} (${c.trying.tries_left} tries left after this one)`);
if (c.rolledBack) console.error(`boot: ${release} ${c.rolledBack.version} rolled back to ${c.rolledBack.to_version ?? "the built-in code"}: ${c.rolledBack.reason}`);
process.stdout.write(c.dir ?? "");
