// A store written the way a version before at-rest encryption wrote it: a `nats-server` first on
// PATH that drops the `cipher`/`key` lines from the config membershipd renders and runs the real
// server on that. Used by the single-node rekey test and the cluster's node-by-node migration.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** A `nats-server` that runs the real one on the rendered config without its at-rest key lines. */
export function plaintextShim(bin: string): string {
  const real = execFileSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" }).trim();
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, "nats-server"),
    [
      "#!/bin/sh",
      "# An older membershipd: the same nats-server, its JetStream store not encrypted at rest.",
      'if [ "$1" = "-c" ]; then',
      `  sed -e '/^  cipher: /d' -e '/^  key: \\$UNIBUS_JS_KEY/d' "$2" > "$2.plain"`,
      `  exec ${real} -c "$2.plain"`,
      "fi",
      `exec ${real} "$@"`,
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  return bin;
}
