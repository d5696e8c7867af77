// A child process for test/rollouts.test.ts: a control plane (store, projector, command service,
// rollout driver) on the test's nats-server, in its own process so the test can SIGKILL it
// mid-rollout, as a crash or a power cut would (no clean stop: its driver lease is left to expire).
import { readFileSync } from "node:fs";
import { connectNats } from "../services/bus/mod.ts";
import { startControlPlane } from "../services/membershipd/mod.ts";

const input = JSON.parse(readFileSync(0, "utf8")) as {
  url: string;
  dataDir: string;
  self: string;
  updates: Record<string, number>;
};
const nc = await connectNats({ servers: input.url, name: `test-plane-${input.self}` });
await startControlPlane({
  nc,
  dataDir: input.dataDir,
  replicas: 1,
  clusterName: "test",
  self: input.self,
  updates: input.updates,
  log: (l) => console.error(`${input.self}: ${l}`),
});
process.stdout.write("ready\n");
setInterval(() => {}, 60_000);
