// Issue 6's figure: the time for a vault-mode node to rebuild its data key from K+1 guardians on
// loopback. An in-process control plane on a secured server (startSecurePlane), five enrolled
// nodes on their own connections: four guardians serving `unibus.vault.<guardian>.share` (the
// agent's real endpoint) and an owner that splits its key among them (K = 3) and then unlocks 100
// times (OwnerVault.withKey: vault.plan, K+1 signed share requests in parallel, each checked by the
// guardian and by membershipd's vault.fetch with a ShareReleased event, re-sealed to a fresh
// ephemeral key, opened, Shamir rebuild, commitment check, key zeroed). Raw: the same round trips
// (one request, then K+1 in parallel) with the same payload sizes to plain echo responders on the
// same server, alternating with unibus in blocks of 10.
import { rmSync } from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeActorId, type Reply } from "../schemas/mod.ts";
import { NodeStore, join as joinFleet } from "../services/agent/mod.ts";
import { OwnerVault, startGuardian, type Guardian } from "../services/agent/vault/mod.ts";
import { connectNats } from "../services/bus/mod.ts";
import { inboxPrefix, signCommand, systemInputs } from "../services/core/mod.ts";
import { adminClient, newInvite } from "../test/enroll-helpers.ts";
import { startSecurePlane, tempDir } from "../test/harness.ts";
import { fmtMs, fmtRatio, log, now, percentiles, scaled, type BenchResult } from "./common.ts";

const UNLOCKS = scaled(100);
const BLOCK = 10;
const TARGET_P99_MS = 500;

async function nodeConnection(store: NodeStore, node: string): Promise<NatsConnection> {
  const config = store.enrolled()!;
  return await connectNats({
    servers: config.urls,
    name: `bench ${node}`,
    creds: store.creds(),
    caFile: store.path("ca"),
    inboxPrefix: inboxPrefix(store.keys().signer.publicKey),
  });
}

export async function run(): Promise<BenchResult> {
  const started = now();
  const plane = await startSecurePlane();
  const dirs: string[] = [];
  const conns: NatsConnection[] = [];
  const guardians: Guardian[] = [];
  try {
    const admin = adminClient(plane);
    const nodes = ["owner", "guard-1", "guard-2", "guard-3", "guard-4"];
    const stores = new Map<string, NodeStore>();
    for (const node of nodes) {
      const dir = tempDir("unibus-bench-vault-");
      dirs.push(dir);
      const store = new NodeStore(dir);
      await joinFleet(store, (await newInvite(admin, { note: node })).raw, {
        node,
        labels: {},
        timeoutMs: 10_000,
        log: () => {},
      });
      stores.set(node, store);
    }
    const ask =
      (nc: NatsConnection, node: string) =>
      async (action: string, args: Record<string, unknown>): Promise<Reply> => {
        const signer = stores.get(node)!.keys().signer;
        const cmd = signCommand(
          { action, args, actor: { id: nodeActorId(node), key: signer.publicKey } },
          signer,
          systemInputs,
        );
        return (await nc.request(`unibus.cmd.membership.${action}`, JSON.stringify(cmd), { timeout: 10_000 })).json();
      };
    for (const g of nodes.slice(1)) {
      const nc = await nodeConnection(stores.get(g)!, g);
      conns.push(nc);
      // The rate limit is raised: 100 unlocks in a row are what it exists to stop.
      guardians.push(
        startGuardian(nc, {
          node: g,
          kexSeed: () => stores.get(g)!.kexSeed(),
          ask: ask(nc, g),
          rateLimit: { burst: 1e6, perSecond: 1e6 },
        }),
      );
    }
    const ownerNc = await nodeConnection(stores.get("owner")!, "owner");
    conns.push(ownerNc);
    const vault = new OwnerVault({
      node: "owner",
      dir: dirs[0]!,
      signer: stores.get("owner")!.keys().signer,
      ask: ask(ownerNc, "owner"),
      log: () => {},
      request: async (subject, payload, timeout) => (await ownerNc.request(subject, payload, { timeout })).json(),
      checkIntervalMs: 3_600_000,
      initialSecrets: { bench: "x" },
    });
    vault.start(true);
    while (vault.info().state !== "unlocked") {
      if (vault.info().state === "waiting-for-peers")
        throw new Error(`bench vault did not start: ${vault.info().problem}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const { k, n } = vault.info();
    const fanout = Math.min(n, k + 1);

    // Raw: echo responders of the same sizes on the guardians' connections and a "plan" responder.
    const planBytes = JSON.stringify(await ask(ownerNc, "owner")("vault.plan", { owner: "owner" })).length;
    const shareBytes = 1100;
    // Node identities may not use other subjects: the raw side runs on two service connections (same server, same TLS).
    const rawServer = await plane.connectAs(plane.security.serviceCreds);
    const rawClient = await plane.connectAs(plane.security.serviceCreds);
    conns.push(rawServer, rawClient);
    const rawSubs = Array.from({ length: fanout }, (_, i) =>
      rawServer.subscribe(`bench.raw.g${i}`, { callback: (_e, m) => void m.respond(new Uint8Array(shareBytes / 4)) }),
    );
    rawSubs.push(
      rawServer.subscribe("bench.raw.plan", { callback: (_e, m) => void m.respond(new Uint8Array(planBytes)) }),
    );
    const payload = new Uint8Array(shareBytes);
    const rawUnlock = async () => {
      await rawClient.request("bench.raw.plan", new Uint8Array(400), { timeout: 5000 });
      await Promise.all(
        Array.from({ length: fanout }, (_, i) => rawClient.request(`bench.raw.g${i}`, payload, { timeout: 5000 })),
      );
    };
    const unlock = () => vault.withKey(async () => {});

    for (let i = 0; i < 5; i++) {
      await unlock();
      await rawUnlock();
    }
    const u: number[] = [];
    const r: number[] = [];
    for (let done = 0; done < UNLOCKS; done += BLOCK) {
      for (let i = 0; i < Math.min(BLOCK, UNLOCKS - done); i++) {
        const t = now();
        await unlock();
        u.push(now() - t);
      }
      for (let i = 0; i < Math.min(BLOCK, UNLOCKS - done); i++) {
        const t = now();
        await rawUnlock();
        r.push(now() - t);
      }
    }
    const bad = vault.info().mismatches.length;
    await vault.stop();
    for (const s of rawSubs) s.unsubscribe();
    const [u50, u99] = percentiles(u, [50, 99]);
    const [r50, r99] = percentiles(r, [50, 99]);
    log(`unlock: unibus p50 ${fmtMs(u50!)} p99 ${fmtMs(u99!)} ms; raw p50 ${fmtMs(r50!)} p99 ${fmtMs(r99!)} ms`);
    return {
      name: "unlock",
      title: "Vault unlock from K+1 guardians",
      description: `In-process control plane on a secured server (\`startSecurePlane\`), ${n} guardians and one owner, each on its own node connection. The owner's data key is split with K = ${k}; then ${UNLOCKS} unlocks one after another, each \`OwnerVault.withKey\`: \`vault.plan\` from membershipd, ${fanout} signed share requests in parallel (each guardian checks it, asks membershipd's \`vault.fetch\`, which checks the owner's identity and epoch and appends ShareReleased, opens its sealed share and re-seals it to the request's ephemeral key), Shamir rebuild, commitment check, key zeroed. Raw: one request and then ${fanout} in parallel of the same sizes to echo responders on the same server, alternating in blocks of ${BLOCK}.`,
      headers: ["", "unibus", "raw NATS", "unibus / raw"],
      rows: [
        [`unlock from K+1 = ${fanout} guardians p50 (ms)`, fmtMs(u50!), fmtMs(r50!), fmtRatio(u50! / r50!)],
        [`unlock p99 (ms)`, fmtMs(u99!), fmtMs(r99!), fmtRatio(u99! / r99!)],
        ["unlocks / shares flagged as mismatched", `${u.length} / ${bad}`, `${r.length}`, ""],
      ],
      target: `p99 < ${TARGET_P99_MS} ms on loopback (a node's boot waits for it)`,
      measured: `p50 ${fmtMs(u50!)} ms, p99 ${fmtMs(u99!)} ms`,
      pass: u99! < TARGET_P99_MS && bad === 0,
      notes: [
        "Each unlock appends K+1 ShareReleased events (one per guardian, each on its own `share/<owner>.<guardian>` aggregate, so they do not race) and costs 2 + 2(K+1) NATS round trips: the plan, and per guardian the owner's request and the guardian's vault.fetch; raw does 1 + (K+1).",
        "The guardians' rate limit (10 requests per owner per minute by default) is raised for the benchmark.",
      ],
      seconds: (now() - started) / 1000,
    };
  } finally {
    for (const g of guardians) await g.stop();
    for (const nc of conns) await nc.close().catch(() => {});
    await plane.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
