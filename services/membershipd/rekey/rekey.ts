// `membershipd rekey-store`: the store of a stopped membershipd copied into a new store under a new
// at-rest key, then swapped in (switch.ts). The old store's server (old key, or none) and a staging
// server (new key) run side by side on loopback; every stream that is not rebuilt (streams.ts) is
// copied message by message at its own sequence (copy.ts); only a copy whose every stream and chain
// head compare equal is committed. The old store is moved aside, never deleted unless --discard-old.
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { OperatorAuth } from "../../bus/mod.ts";
import type { ReplayedStream } from "../restore/mod.ts";
import { connectAllowedEverything, runningServer, startStagingServer, type StagingServer } from "../restore/mod.ts";
import { copyStreams } from "./copy.ts";
import { RekeyError } from "./errors.ts";
import { oldKey, stageNewKey } from "./keys.ts";
import type { RekeyOptions } from "./options.ts";
import { startSourceServer, type SourceServer } from "./source-server.ts";
import { storeCut } from "./streams.ts";
import {
  asideDirFor,
  commit,
  discardOld,
  finishSwap,
  READY_DIR,
  removeStaleStagingDirs,
  stagingDirFor,
} from "./switch.ts";

export interface RekeySummary {
  dataDir: string;
  encrypted: "from-plaintext" | "rotated" | "resumed";
  streams: ReplayedStream[];
  /** Streams left to be rebuilt by membershipd (projections, checkpoints, nonces). */
  skipped: string[];
  eventsHead: string | null;
  keyFile: string;
  /** Where the old store and key were moved (null when --discard-old removed them). */
  aside: string | null;
  seconds: number;
}

export interface RekeyContext {
  log: (line: string) => void;
  signal?: AbortSignal;
}

function refuseRunning(dataDir: string): void {
  const pid = runningServer(dataDir);
  if (pid !== null)
    throw new RekeyError(
      "E_REKEY_IN_USE",
      `a nats-server (pid ${pid}) is running on ${dataDir}: stop membershipd before rekeying its store; nothing was changed`,
    );
}

export async function rekeyStore(o: RekeyOptions, ctx: RekeyContext): Promise<RekeySummary> {
  const started = performance.now();
  refuseRunning(o.dataDir);
  for (const stale of removeStaleStagingDirs(o.dataDir)) ctx.log(`removed ${stale}, left by a rekey that was killed`);
  if (existsSync(join(o.dataDir, READY_DIR))) return resume(o, ctx, started);
  refuseDataDir(o.dataDir);
  const old = oldKey(o);
  const staging = stagingDirFor(o.dataDir);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { mode: 0o700 });
  let built: NewStore;
  try {
    built = await buildNewStore(o, ctx, staging, old);
    // Checked again at the last moment: nothing may have started on the store meanwhile.
    refuseRunning(o.dataDir);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  const aside = asideDirFor(o.dataDir);
  commit(staging, o.dataDir, { aside, keyFile: o.keyFile });
  finishSwap(o.dataDir);
  if (o.discardOld) discardOld(aside);
  return {
    dataDir: o.dataDir,
    encrypted: old === null ? "from-plaintext" : "rotated",
    ...built,
    keyFile: o.keyFile,
    aside: o.discardOld ? null : aside,
    seconds: (performance.now() - started) / 1000,
  };
}

function refuseDataDir(dataDir: string): void {
  if (!existsSync(join(dataDir, "nats", "jetstream")))
    throw new RekeyError("E_USAGE", `${dataDir} holds no JetStream store (nats/jetstream); nothing was changed`);
  if (!existsSync(join(dataDir, "auth", "account.nk")))
    throw new RekeyError(
      "E_REKEY_UNSUPPORTED",
      `${dataDir} holds no operator-mode keys (auth/): not a data dir membershipd made; nothing was changed`,
    );
}

type NewStore = Pick<RekeySummary, "streams" | "skipped" | "eventsHead">;

/** The new key and store in the staging dir, both servers stopped again; on failure neither outlives it. */
async function buildNewStore(
  o: RekeyOptions,
  ctx: RekeyContext,
  staging: string,
  old: string | null,
): Promise<NewStore> {
  let source: SourceServer | null = null;
  let target: StagingServer | null = null;
  try {
    const atRest = stageNewKey(o, staging, old);
    const runDir = join(staging, "source");
    source = await startSourceServer({ dataDir: o.dataDir, runDir, serverName: o.serverName, key: old });
    const auth = new OperatorAuth(join(o.dataDir, "auth"));
    const from = await connectAllowedEverything(source.url, auth, join(o.dataDir, "tls", "ca.pem"));
    const { cut, skipped } = await storeCut(from.jsm);
    const list = cut.streams.map((s) => `${s.name} (${s.messages})`).join(", ");
    ctx.log(`copying ${list}; rebuilt on start: ${skipped.join(", ") || "none"}`);
    target = await startStagingServer(staging, o.serverName, atRest, quiet(ctx.log), o.dataDir);
    const streams = await copyStreams({ nc: from.nc, jsm: from.jsm, dataDir: o.dataDir }, target, cut, ctx.signal);
    await from.nc.close();
    await target.stop();
    target = null;
    await source.stop();
    source = null;
    rmSync(runDir, { recursive: true, force: true });
    return { streams, skipped, eventsHead: cut.eventsHead };
  } catch (err) {
    target?.kill();
    source?.kill();
    throw err;
  }
}

/** A swap that was cut short: finished, nothing copied again. */
function resume(o: RekeyOptions, ctx: RekeyContext, started: number): RekeySummary {
  ctx.log(`finishing the swap an interrupted rekey left in ${join(o.dataDir, READY_DIR)}`);
  const plan = finishSwap(o.dataDir);
  if (o.discardOld) discardOld(plan.aside);
  return {
    dataDir: o.dataDir,
    encrypted: "resumed",
    streams: [],
    skipped: [],
    eventsHead: null,
    keyFile: plan.keyFile,
    aside: o.discardOld ? null : plan.aside,
    seconds: (performance.now() - started) / 1000,
  };
}

function quiet(log: (line: string) => void): (line: string) => void {
  return process.env.UNIBUS_DEBUG ? (line) => log(`staging nats-server: ${line}`) : () => {};
}
