// Issue 7's figures. (a) Rollout: `rollout.start` of a 1 MiB release to 100 simulated nodes
// (test/sim-agents.ts: the real command endpoint and Updater — object-store download, size,
// SHA-256 and minisign checks, tar listing and unpack into a slot, A/B switch, commit — in this
// process) with the default plan (canary 1, batches of 10 %), timed until the rollout's projection
// says completed; against the floor of the same plan done with raw object-store gets of the same
// bytes (canary, then each batch in parallel, each node one get). (b) Download throughput: the
// updater's bounded read of the 1 MiB object, and that plus the checks it makes before unpacking,
// against a raw `getBlob` of the same object, one at a time.
import { randomBytes } from "node:crypto";
import { Objm } from "@nats-io/obj";
import { putReleaseObject } from "../services/bus/release-objects.ts";
import {
  batchSize,
  planBatches,
  publicKeyOf,
  releaseObjectName,
  verifyManifest,
  sha256Hex,
} from "../services/core/mod.ts";
import { readBounded, listTar } from "../services/agent/update/mod.ts";
import { makeTar, manifestFor, sign } from "../test/release-helpers.ts";
import { enrollNodes, newReleaseKey, startSimNodes, type SimNode } from "../test/sim-agents.ts";
import { startSimFleetPlane } from "./sim-fleet.ts";
import { fmtInt, fmtMs, fmtRatio, log, now, percentiles, scaled, type BenchResult } from "./common.ts";

const NODES = scaled(100);
const RELEASE_BYTES = 1024 * 1024;
const CONNECTIONS = 10;
const DOWNLOADS = scaled(40);
const ROUNDS = 2;
const TARGET_RATIO = 3;

export async function run(): Promise<BenchResult> {
  const started = now();
  const fleet = await startSimFleetPlane("rollout", CONNECTIONS);
  const { h, plane, dir, conns, send } = fleet;
  let nodes: SimNode[] = [];
  try {
    const key = newReleaseKey();
    const names = Array.from({ length: NODES }, (_v, i) => `sim-${String(i).padStart(3, "0")}`);
    log(`rollout: enrolling and starting ${NODES} simulated nodes`);
    const signers = await enrollNodes(plane.aggregates, names, () => ({ role: "bench" }));
    nodes = await startSimNodes(conns, signers, { dir, releaseKey: key, report: false });
    const store = await new Objm(h.nc).open("UNIBUS_releases");

    // Incompressible bytes, so the gzip'd tarball is about 1 MiB.
    const release = (version: string) =>
      makeTar([
        { name: "payload.bin", content: randomBytes(RELEASE_BYTES - 4096) },
        { name: "VERSION", content: version },
      ]);
    const publish = async (version: string) => {
      const tarball = release(version);
      await putReleaseObject(h.nc, releaseObjectName(sha256Hex(tarball)), tarball, `app ${version}`);
      const manifest = manifestFor("app", version, tarball, { install: null, health: null, services: [] });
      await send("release.publish", { manifest, signature: sign(manifest, key) });
      return { tarball, manifest };
    };

    const plan = planBatches(names, 1, batchSize("10%", NODES - 1));
    const rawPlan = async (object: string) => {
      const t = now();
      for (const batch of plan)
        await Promise.all(
          batch.map(
            async (_n, i) =>
              void (await (await new Objm(conns[i % CONNECTIONS]!).open("UNIBUS_releases")).getBlob(object)),
          ),
        );
      return now() - t;
    };
    const rollout = async (version: string) => {
      const t = now();
      const r = await send("rollout.start", { name: "app", version, all: true });
      for (;;) {
        const s = await send("rollout.status", { rollout: r.rollout });
        if (s.state === "completed") {
          const failed = s.nodes.filter((n: any) => n.rollout_state !== "committed").length;
          if (failed) throw new Error(`rollout ${version}: ${failed} nodes did not commit`);
          return now() - t;
        }
        if (s.state !== "running") throw new Error(`rollout ${version} is ${s.state}: ${s.reason}`);
        await new Promise((res) => setTimeout(res, 20));
      }
    };

    const uni: number[] = [];
    const raw: number[] = [];
    let sample = await publish("1.0.0");
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(await rawPlan(releaseObjectName(sample.manifest.sha256)));
      uni.push(await rollout(sample.manifest.version));
      log(`rollout: round ${r + 1}: rollout ${fmtMs(uni[r]!)} ms, raw plan ${fmtMs(raw[r]!)} ms`);
      sample = await publish(`1.${r + 1}.0`);
    }

    // (b) one download at a time.
    const object = releaseObjectName(sample.manifest.sha256);
    const signature = sign(sample.manifest, key);
    const trusted = [publicKeyOf(key)];
    const timeEach = async (n: number, fn: () => Promise<unknown>) => {
      const lat: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = now();
        await fn();
        lat.push(now() - t);
      }
      return lat;
    };
    const getRaw = async () => {
      const b = await store.getBlob(object);
      if (!b || b.length !== sample.tarball.length) throw new Error("raw get: wrong size");
    };
    const getBounded = async () => {
      const f = await readBounded(store, object, sample.manifest.size);
      if (!f.ok) throw new Error(f.error.message);
      return f.value;
    };
    const getChecked = async () => {
      const bytes = await getBounded();
      if (sha256Hex(bytes) !== sample.manifest.sha256) throw new Error("digest");
      if ("code" in verifyManifest(sample.manifest, signature, trusted)) throw new Error("signature");
      if ("code" in listTar(bytes)) throw new Error("listing");
    };
    await timeEach(3, getRaw);
    await timeEach(3, getChecked);
    const rawLat: number[] = [];
    const boundedLat: number[] = [];
    const checkedLat: number[] = [];
    for (let i = 0; i < 4; i++) {
      rawLat.push(...(await timeEach(DOWNLOADS / 4, getRaw)));
      boundedLat.push(...(await timeEach(DOWNLOADS / 4, getBounded)));
      checkedLat.push(...(await timeEach(DOWNLOADS / 4, getChecked)));
    }
    const mib = sample.tarball.length / 2 ** 20;
    const rate = (lat: number[]) => mib / (percentiles(lat, [50])[0]! / 1000);
    const [r50] = percentiles(rawLat, [50]);
    const [b50] = percentiles(boundedLat, [50]);
    const [c50] = percentiles(checkedLat, [50]);
    const bestUni = Math.min(...uni);
    const bestRaw = Math.min(...raw);
    const ratio = bestUni / bestRaw;
    return {
      name: "rollout",
      title: "Rollouts and release downloads",
      description:
        `(a) \`rollout.start\` of a ${fmtMs(mib)} MiB release to ${fmtInt(NODES)} simulated nodes (the real command endpoint and Updater: download from ` +
        "UNIBUS_releases, size, SHA-256 and minisign checks, tar listing, unpack into the standby slot, switch, commit; in this process, on " +
        `${CONNECTIONS} connections; no install step or health command), canary 1 then batches of 10 %, from the start command to the rollout's ` +
        "projection reading completed (polled every 20 ms); against the same plan done with raw object-store gets of the same bytes. " +
        `(b) One download at a time of that object: a raw \`getBlob\`, the updater's bounded read, and the bounded read plus every check made before unpacking; ${fmtInt(DOWNLOADS)} each, interleaved.`,
      headers: ["", "time (ms)", "MiB/s", "ratio to raw"],
      rows: [
        [
          `raw plan: ${plan.length} batches of gets, best of ${ROUNDS}`,
          fmtMs(bestRaw),
          fmtMs((mib * NODES) / (bestRaw / 1000)),
          "1.00×",
        ],
        [
          `**rollout to ${fmtInt(NODES)} nodes, all committed**, best / worst of ${ROUNDS}`,
          `${fmtMs(bestUni)} / ${fmtMs(Math.max(...uni))}`,
          fmtMs((mib * NODES) / (bestUni / 1000)),
          fmtRatio(ratio),
        ],
        ["raw getBlob, p50", fmtMs(r50!), fmtMs(rate(rawLat)), "1.00×"],
        ["updater's bounded read, p50", fmtMs(b50!), fmtMs(rate(boundedLat)), fmtRatio(b50! / r50!)],
        [
          "bounded read + SHA-256 + signature + tar listing, p50",
          fmtMs(c50!),
          fmtMs(rate(checkedLat)),
          fmtRatio(c50! / r50!),
        ],
      ],
      target: `rollout to all committed ≤ ${TARGET_RATIO}× the raw plan of gets`,
      measured: `${fmtRatio(ratio)} (${fmtMs(bestUni)} vs ${fmtMs(bestRaw)} ms)`,
      pass: ratio <= TARGET_RATIO,
      notes: [
        `Rollout rounds (ms): ${uni.map(fmtMs).join(", ")}; raw plan rounds: ${raw.map(fmtMs).join(", ")}.`,
        "Each batch waits for its slowest node before the next starts, in both rows; the rollout adds per node a signed command, the record's fdatasyncs, " +
          "the checks, unpacking 1 MiB to disk with fsyncs of the slot state, and per batch the driver's events (RolloutBatchStarted, one RolloutNodeFinished per node).",
        "The simulated nodes share this process's event loop and the machine's disk; real nodes download in parallel on their own CPUs and disks.",
      ],
      seconds: (now() - started) / 1000,
    };
  } finally {
    await fleet.stop(nodes);
  }
}
