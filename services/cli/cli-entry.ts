import { isMainThread } from "node:worker_threads";
import { main } from "./main.ts";
// The bundle is also a replay's signature worker (services/core/verify-worker.ts) and a restore's
// event-audit worker (services/core/backup/events-worker.ts): there it only serves them.
if (isMainThread) process.exitCode = await main(process.argv.slice(2));
