// A child process for test/updates.test.ts: runs one update with UNIBUS_TEST_CRASH_AT set, so the
// updater SIGKILLs it at that point, as a power cut or an OOM kill would.
import { readFileSync } from "node:fs";
import { Objm } from "@nats-io/obj";
import { connectNats } from "../services/bus/mod.ts";
import {
  readBounded,
  RELEASES_OBJECT_STORE,
  sandboxedSteps,
  Updater,
  type CrashPoint,
} from "../services/agent/update/mod.ts";

const input = JSON.parse(readFileSync(0, "utf8"));
const nc = await connectNats({ servers: input.url, name: "test-update-child" });
const store = await new Objm(nc).open(RELEASES_OBJECT_STORE);
const u = new Updater({
  dir: input.dir,
  agentVersion: "0.1.0",
  trustedKeys: () => [{ keyId: input.keyId, key: new Uint8Array(input.key) }],
  fetch: (o, m) => readBounded(store, o, m),
  restartServices: async () => null,
  checkServices: async () => null,
  steps: sandboxedSteps({ hidden: [], allowUnsandboxed: false }),
  report: () => {},
  log: (l) => console.error(l),
  crashAt: process.env.UNIBUS_TEST_CRASH_AT as CrashPoint,
});
const r = await u.update("crashing", input.manifest, input.signature);
console.error(`update-child: not killed: ${JSON.stringify(r)}`);
process.exit(3);
