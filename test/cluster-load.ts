// A steady load for the cluster test, run inside the operator's namespace: signed room.create
// commands one after another, at most RATE a second, failing over between the servers, until the
// stop file appears. The cap keeps a run's size (and the time its checks take to read every
// acknowledged room back) the same however fast the cluster answers.
// Every command acknowledged ok is written to the out file (room and stream sequence), so the
// test can check afterwards that each one is still in the stream.
// Usage: cluster-load.ts DATA_DIR SERVER[,SERVER…] OUT_FILE STOP_FILE TAG
import { appendFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { connectNats, readCredsFile } from "../services/bus/mod.ts";
import { inboxPrefix } from "../services/core/mod.ts";
import { loadOrCreateSigner } from "../services/membershipd/identities.ts";
import { signed } from "./signed-commands.ts";

const [dataDir, servers, out, stop, tag] = process.argv.slice(2) as [string, string, string, string, string];
const creds = readCredsFile(join(dataDir, "admin.creds"));
const admin = loadOrCreateSigner(join(dataDir, "admin.nk"));
const nc = await connectNats({
  servers: servers.split(","),
  name: "cluster-load",
  forever: true,
  caFile: join(dataDir, "tls", "ca.pem"),
  creds: creds.bytes,
  inboxPrefix: inboxPrefix(creds.publicKey),
  timeoutMs: 5000,
});
const RATE = 40;
const started = Date.now();
let ok = 0;
let failed = 0;
for (let i = 0; !existsSync(stop); i++) {
  const due = started + (i * 1000) / RATE - Date.now();
  if (due > 0) await new Promise((r) => setTimeout(r, due));
  const room = `${tag}-${i}`;
  try {
    const reply = (
      await nc.request(
        "unibus.cmd.membership.room.create",
        JSON.stringify(signed(admin, "room.create", { room, subject: "load" })),
        { timeout: 3000 },
      )
    ).json<any>();
    if (reply.ok) {
      appendFileSync(out, `${room}\t${reply.result.seq}\n`);
      ok++;
    } else failed++;
  } catch {
    failed++;
    await new Promise((r) => setTimeout(r, 100));
  }
}
process.stdout.write(JSON.stringify({ ok, failed }) + "\n");
await nc.close();
