// Issue 22's figure: installing one app on 100 simulated nodes (test/sim-agents.ts with apps: the
// real command endpoint answering membershipd's signed `apps.sync`, and the real AppReconciler in
// this process — `node.apps`, object-store download, size, SHA-256 and minisign checks, unpack,
// state file — with a supervisor stand-in that runs no process), timed from `app.plan` + the
// reviewed `app.install --all` until `app.status` (UNIBUS_node_apps) shows every node running it;
// against the raw plan of the same download: each node one `getBlob` of the same tarball on the
// same connections, all at once.
import { randomBytes } from "node:crypto";
import { Objm } from "@nats-io/obj";
import { AppManifest, type NodeAppRecord } from "../schemas/mod.ts";
import { putReleaseObject, RELEASES_OBJECT_STORE } from "../services/bus/release-objects.ts";
import { appManifestBytes, appObjectName, sha256Hex, signMinisign } from "../services/core/mod.ts";
import { makeTar } from "../test/release-helpers.ts";
import { enrollNodes, newReleaseKey, startSimNodes, type SimNode } from "../test/sim-agents.ts";
import { startSimFleetPlane } from "./sim-fleet.ts";
import {
  addCpu,
  cpuMeter,
  fmtInt,
  fmtMs,
  fmtRatio,
  log,
  now,
  percentiles,
  scaled,
  sleep,
  type BenchResult,
  type CpuUse,
} from "./common.ts";

const NODES = scaled(100);
const APP_BYTES = 1024 * 1024;
const CONNECTIONS = 10;
const ROUNDS = 3;
const POLL_MS = 20;
const DEADLINE_MS = 120_000;
const TARGET_RATIO = 3;

interface Round {
  total: number;
  /** Per node, ms from the start to its end (the get's bytes in hand; membershipd taking its AppRunning). */
  perNode: number[];
  cpu: CpuUse;
}

/** What the nodes' reports say of the app being installed. */
interface Watch {
  app: string;
  t0: number;
  running: Map<string, number>;
  failed: string[];
}

export async function run(): Promise<BenchResult> {
  const started = now();
  const fleet = await startSimFleetPlane("apps", CONNECTIONS);
  const { h, plane, dir, conns, send } = fleet;
  let nodes: SimNode[] = [];
  try {
    const key = newReleaseKey();
    const names = Array.from({ length: NODES }, (_v, i) => `sim-${String(i).padStart(3, "0")}`);
    let watch: Watch | null = null;
    const nodeLog: string[] = [];
    log(`apps: enrolling and starting ${NODES} simulated nodes`);
    const signers = await enrollNodes(plane.aggregates, names, () => ({ role: "bench" }));
    nodes = await startSimNodes(conns, signers, {
      dir,
      releaseKey: key,
      report: true,
      apps: true,
      log: (line) => void (nodeLog.length < 50 && nodeLog.push(line)),
      onReported: (e) => {
        if (!watch || e.data.app !== watch.app) return;
        if (e.type === "AppRunning" && !watch.running.has(e.data.node))
          watch.running.set(e.data.node, now() - watch.t0);
        if (e.type === "AppFailed") watch.failed.push(`${e.data.node}: ${e.data.code} ${e.data.reason}`);
      },
    });

    // Incompressible bytes, so the gzip'd tarball is about 1 MiB; signed like `app publish` signs.
    const publish = async (app: string) => {
      const tarball = makeTar([
        { name: "bin", type: "dir" },
        { name: "bin/run", content: "#!/bin/sh\nexec sleep infinity\n", mode: 0o755 },
        { name: "payload.bin", content: randomBytes(APP_BYTES - 4096) },
      ]);
      const manifest = AppManifest.parse({
        v: 1,
        kind: "app",
        name: app,
        version: "1.0.0",
        description: "the apps benchmark's app",
        sha256: sha256Hex(tarball),
        size: tarball.length,
        min_agent_version: "0.1.0",
        created_at: new Date().toISOString(),
        services: [{ name: "main", command: "bin/run" }],
        permissions: { volumes: [{ name: "data" }] },
      });
      const signature = signMinisign(
        appManifestBytes(manifest),
        key,
        `unibus app ${app} 1.0.0 sha256:${manifest.sha256}`,
      );
      await putReleaseObject(h.nc, appObjectName(manifest.sha256), tarball, `app ${app} 1.0.0`);
      await send("app.publish", { manifest, signature });
      return manifest;
    };

    const rawPlan = async (object: string, size: number): Promise<Round> => {
      const cpu = cpuMeter(h.nats.proc.pid);
      const t0 = now();
      // Node i is on connection i % CONNECTIONS, as startSimNodes hands them out.
      const perNode = await Promise.all(
        names.map(async (_n, i) => {
          const store = await new Objm(conns[i % CONNECTIONS]!).open(RELEASES_OBJECT_STORE);
          const bytes = await store.getBlob(object);
          if (!bytes || bytes.length !== size) throw new Error("raw get: wrong size");
          return now() - t0;
        }),
      );
      return { total: now() - t0, perNode, cpu: cpu() };
    };

    const commandMs: number[] = [];
    const install = async (app: string): Promise<Round> => {
      const cpu = cpuMeter(h.nats.proc.pid);
      const w: Watch = { app, t0: now(), running: new Map(), failed: [] };
      watch = w;
      const plan = await send("app.plan", { op: "install", app, all: true });
      await send("app.install", { app, all: true, plan: plan.digest });
      commandMs.push(now() - w.t0);
      for (;;) {
        if (w.failed.length) throw new Error(`app ${app} failed on ${w.failed.length} nodes: ${w.failed[0]}`);
        // Every node's AppRunning taken by membershipd: then the read model must show them all.
        if (w.running.size >= NODES) {
          const s = await send("app.status", { app });
          const rows = s.items as NodeAppRecord[];
          if (rows.filter((r) => r.actual?.state === "running").length === NODES) break;
        }
        if (now() - w.t0 > DEADLINE_MS)
          throw new Error(
            `app ${app}: ${w.running.size} of ${NODES} nodes running after ${DEADLINE_MS} ms; nodes said: ${nodeLog.slice(0, 5).join(" | ")}`,
          );
        await sleep(POLL_MS);
      }
      const total = now() - w.t0;
      watch = null;
      return { total, perNode: [...w.running.values()], cpu: cpu() };
    };

    const uni: Round[] = [];
    const raw: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const app = `bench-app-${r + 1}`;
      const m = await publish(app);
      raw.push(await rawPlan(appObjectName(m.sha256), m.size));
      uni.push(await install(app));
      log(`apps: round ${r + 1}: install ${fmtMs(uni[r]!.total)} ms, raw plan ${fmtMs(raw[r]!.total)} ms`);
    }
    return result(uni, raw, commandMs, started);
  } finally {
    await fleet.stop(nodes);
  }
}

function result(uni: Round[], raw: Round[], commandMs: number[], started: number): BenchResult {
  const best = (rs: Round[]) => Math.min(...rs.map((r) => r.total));
  const worst = (rs: Round[]) => Math.max(...rs.map((r) => r.total));
  const [u50, u99] = percentiles(
    uni.flatMap((r) => r.perNode),
    [50, 99],
  );
  const [r50, r99] = percentiles(
    raw.flatMap((r) => r.perNode),
    [50, 99],
  );
  const mib = (APP_BYTES * NODES) / 2 ** 20;
  const ratio = best(uni) / best(raw);
  const cpu = (rs: Round[]) => {
    const c = rs.map((r) => r.cpu).reduce(addCpu);
    return `node ${fmtInt(c.nodeMs / rs.length)} + server ${fmtInt(c.natsMs / rs.length)} ms`;
  };
  return {
    name: "apps",
    title: "App install on simulated nodes",
    description:
      `\`app.plan\` then the reviewed \`app.install --all\` of one app (a ~1 MiB signed tarball) on ${fmtInt(NODES)} simulated nodes, ` +
      "from the plan command until `app.status` (UNIBUS_node_apps) shows every node running it (polled every 20 ms once every node's " +
      "AppRunning was taken). Each node (in this process, on " +
      `${CONNECTIONS} connections) answers membershipd's signed \`apps.sync\` through the real command endpoint and runs the real ` +
      "AppReconciler: `node.apps`, download from UNIBUS_releases, size, SHA-256 and minisign checks, unpack into its own directory, " +
      "state file, AppInstalling and AppRunning reported with `node.report`. **No processes are started**: a supervisor stand-in " +
      "counts each service running at once. Against the raw plan: every node one `getBlob` of the same tarball on the same connections, all at once. " +
      "Per node: from the start to membershipd taking its AppRunning (install), or to its get's last byte (raw); over all rounds.",
    headers: ["", "total (ms)", "per node p50 (ms)", "per node p99 (ms)", "MiB/s", "ratio to raw"],
    rows: [
      [
        `raw plan: ${fmtInt(NODES)} parallel gets, best / worst of ${ROUNDS}`,
        `${fmtMs(best(raw))} / ${fmtMs(worst(raw))}`,
        fmtMs(r50!),
        fmtMs(r99!),
        fmtMs(mib / (best(raw) / 1000)),
        "1.00×",
      ],
      [
        `**app install on ${fmtInt(NODES)} nodes, all running**, best / worst of ${ROUNDS}`,
        `${fmtMs(best(uni))} / ${fmtMs(worst(uni))}`,
        fmtMs(u50!),
        fmtMs(u99!),
        fmtMs(mib / (best(uni) / 1000)),
        fmtRatio(ratio),
      ],
    ],
    target: `app install to all running ≤ ${TARGET_RATIO}× the raw plan of gets`,
    measured: `${fmtRatio(ratio)} (${fmtMs(best(uni))} vs ${fmtMs(best(raw))} ms)`,
    pass: ratio <= TARGET_RATIO,
    notes: [
      `Install rounds (ms): ${uni.map((r) => fmtMs(r.total)).join(", ")}, of which app.plan + app.install answered after ${commandMs.map(fmtMs).join(", ")}; raw plan rounds: ${raw.map((r) => fmtMs(r.total)).join(", ")}.`,
      `CPU per round: install ${cpu(uni)}; raw plan ${cpu(raw)} (this process, simulated nodes and control plane included, and the nats-server).`,
      "The install adds per node: one DesireApps event (written one node after another by app.install, each node told at once), a signed command " +
        "and its record's fdatasync, `node.apps`, the checks, unpacking 1 MiB to disk, the state file's fsyncs, and two node events (AppInstalling, AppRunning) through membershipd and its projection.",
      "The simulated nodes share this process's event loop and the machine's disk; real nodes download in parallel on their own CPUs and disks.",
    ],
    seconds: (now() - started) / 1000,
  };
}
