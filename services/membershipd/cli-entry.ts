import { isMainThread } from "node:worker_threads";
import { runMain } from "./main.ts";
// The bundle is also a restore's event-audit worker (services/core/backup/events-worker.ts): there it only serves audits.
if (isMainThread) runMain(process.argv.slice(2));
