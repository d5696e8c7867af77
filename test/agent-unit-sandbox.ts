// Run by test/systemd-units.test.ts as root under the agent unit's capability bounding set and
// no_new_privs (setpriv, as systemd starts the unit): the supervisor starts a sandboxed service that
// reports what it is, and an unsandboxed one that ignores SIGTERM, then stops both. Prints one JSON
// line: the sandboxed service's `key=value` facts and whether every service process is gone.
import { join } from "node:path";
import { derivedUid } from "../services/agent/supervisor/identity.ts";
import { Fixture, Recorder, shService, waitFor } from "../services/agent/supervisor/testing.ts";

const FACTS = [
  "echo uid=$(id -u)",
  "echo groups=$(id -G)",
  "echo host=$(hostname)",
  "echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ,)",
  "echo nofile=$(ulimit -n)",
  "echo bounding=$(grep CapBnd /proc/self/status | cut -f2)",
  "echo nnp=$(grep NoNewPrivs /proc/self/status | cut -f2)",
];

async function main(): Promise<void> {
  const fixture = new Fixture();
  const rec = new Recorder();
  const own = join(fixture.tempDir(), "own");
  const boxed = shService("unit-caps-boxed", [...FACTS, `echo ok > ${own}/file && echo write_own=yes`].join("\n"), {
    writable: [own],
    limits: { open_files: 321 },
    sandbox: { hostname: "unit-caps" },
    restart: { policy: "never" },
  });
  const bare = shService("unit-caps-bare", "trap '' TERM; echo up; while :; do sleep 1; done", {
    sandbox: { profile: "none" },
  });
  const sup = fixture.supervisor([boxed, bare], rec.options);
  await sup.startAll();
  let gone = false;
  try {
    await waitFor("the sandboxed service to finish", () => rec.of("ServiceStopped", boxed.name).length === 1);
    await waitFor("the unsandboxed service to run", () => rec.out(bare.name).includes("up"));
    await fixture.cleanup();
    gone = true;
  } finally {
    const facts = rec.facts(boxed.name);
    const stderr = rec.out(boxed.name, "stderr");
    console.log(JSON.stringify({ facts, stderr, gone, uid: String(derivedUid(boxed.name)) }));
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(String(err));
    process.exit(1);
  },
);
