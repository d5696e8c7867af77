// Issue 3's figures: (d) enrollments per second for 1,000 nodes (invite check, JWT minting, the
// NodeEnrolled and IdentityIssued events, projection into UNIBUS_nodes) against a raw NATS
// request/reply of the same bytes on the same server; (e) time from `node revoke` to the node's
// cut connection, p50/p99 over 50 revocations, against the server's own mechanism (an account
// JWT pushed with the key revoked, with no events and no command pipeline).
import type { NatsConnection } from "@nats-io/transport-node";
import { permissionsFor, newUserSeed, signerFromSeed, inboxPrefix } from "../services/core/mod.ts";
import { credsFor, parseCreds } from "../services/bus/mod.ts";
import { startSecurePlane, type SecurePlaneHandle } from "../test/harness.ts";
import { adminClient, connectNode, joinRequest, newInvite, nodeKeys, type NodeKeys } from "../test/enroll-helpers.ts";
import { fmtInt, fmtMs, fmtRatio, log, now, percentiles, scaled, sleep, type BenchResult } from "./common.ts";

const NODES = scaled(1000);
const REVOCATIONS = Math.min(NODES, scaled(50));
const CONCURRENCY = 16;
const CUT_TARGET_MS = 2000;

/** Runs `n` requests with at most `width` in flight; returns per-request latencies (ms) and wall seconds. */
async function pool(
  n: number,
  width: number,
  one: (i: number) => Promise<void>,
): Promise<{ lat: number[]; seconds: number }> {
  const lat: number[] = [];
  let next = 0;
  const t0 = now();
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let i = next++; i < n; i = next++) {
        const t = now();
        await one(i);
        lat.push(now() - t);
      }
    }),
  );
  return { lat, seconds: (now() - t0) / 1000 };
}

async function enrollments(h: SecurePlaneHandle, keys: NodeKeys[]) {
  const send = adminClient(h);
  const invite = await newInvite(send, { uses: keys.length, note: "bench" });
  const bytes = new TextEncoder().encode(invite.token.creds);
  const boot = await h.connectAs(bytes, inboxPrefix(parseCreds(bytes).publicKey));
  const requests = keys.map((k, i) =>
    JSON.stringify(joinRequest(k, { node: `bench-${i}`, secret: invite.token.secret })),
  );
  const configs: unknown[] = [];
  const refusals: Record<string, number> = {};
  let failures = 0;
  const r = await pool(keys.length, CONCURRENCY, async (i) => {
    const reply = (await boot.request("unibus.enroll.join", requests[i]!, { timeout: 60_000 })).json<any>();
    if (reply.ok) configs[i] = reply.result;
    else {
      failures++;
      refusals[reply.error.code] = (refusals[reply.error.code] ?? 0) + 1;
    }
  });
  const t = now();
  await h.plane.projector.waitFor(
    await h.plane.jsm.streams.info("UNIBUS_EVENTS").then((s) => s.state.last_seq),
    120_000,
  );
  const projected = (now() - t) / 1000;
  await boot.close();
  return {
    ...r,
    failures,
    refusals,
    configs,
    projectedAfter: projected,
    replyBytes: JSON.stringify({ ok: true, result: configs[0] }).length,
    requestBytes: requests[0]!.length,
  };
}

/** The same bytes through a plain responder on the same server (service identity both sides). */
async function rawRequests(h: SecurePlaneHandle, n: number, requestBytes: number, replyBytes: number) {
  const responder = await h.connectAs(h.security.serviceCreds);
  const reply = "x".repeat(replyBytes);
  responder.subscribe("bench.enroll.raw", { callback: (_e, m) => void m.respond(reply) });
  await responder.flush();
  const body = "y".repeat(requestBytes);
  const r = await pool(
    n,
    CONCURRENCY,
    async () => void (await h.nc.request("bench.enroll.raw", body, { timeout: 60_000 })),
  );
  await responder.close();
  return r;
}

/** Waits for a connection to close; ms since `t0`, or NaN after 10 s. */
/**
 * The moment the server drops the connection (its first "disconnect" status): `closed()` would
 * also count the client's own reconnect attempts that the server then refuses.
 */
function cutAfter(nc: NatsConnection, t0: number): Promise<number> {
  const disconnected = (async () => {
    for await (const s of nc.status()) if (s.type === "disconnect" || s.type === "close") return now() - t0;
    return now() - t0;
  })();
  return Promise.race([disconnected, nc.closed().then(() => now() - t0), sleep(10_000).then(() => NaN)]);
}

async function revocations(h: SecurePlaneHandle, keys: NodeKeys[], configs: any[]) {
  const send = adminClient(h);
  const out: number[] = [];
  const enrolled = [...configs.keys()].filter((i) => configs[i]).slice(0, REVOCATIONS);
  if (enrolled.length < REVOCATIONS)
    throw new Error(`only ${enrolled.length} nodes enrolled; ${REVOCATIONS} are needed for the revocation run`);
  for (const i of enrolled) {
    const nc = await connectNode(h, configs[i], keys[i]!);
    const t0 = now();
    const cut = cutAfter(nc, t0);
    const r = await send("node.revoke", { node: `bench-${i}`, reason: "bench" });
    if (!r.ok) throw new Error(`node.revoke: ${r.error.code}`);
    out.push(await cut);
  }
  return out;
}

/** The server's own revocation: mint a user, connect it, push the account JWT with it revoked. */
async function rawRevocations(h: SecurePlaneHandle) {
  const auth = h.security.auth;
  const system = await h.connectAs(h.security.systemCreds);
  const revoked: Record<string, number> = {};
  const out: number[] = [];
  for (let i = 0; i < REVOCATIONS; i++) {
    const seed = newUserSeed();
    const key = signerFromSeed(seed).publicKey;
    const jwt = await auth.userJwt({ name: `raw-${i}`, key, permissions: permissionsFor("monitor", { key }) });
    const nc = await h.connectAs(credsFor(jwt, seed), inboxPrefix(key));
    seed.fill(0);
    revoked[key] = Math.floor(Date.now() / 1000) + 1;
    const t0 = now();
    const cut = cutAfter(nc, t0);
    await system.request("$SYS.REQ.CLAIMS.UPDATE", await auth.accountJwt(revoked), { timeout: 5000 });
    out.push(await cut);
  }
  await system.close();
  return out;
}

export async function run(): Promise<BenchResult> {
  const started = now();
  const h = await startSecurePlane({ cidr: "10.64.0.0/16" });
  try {
    log(`enroll: making ${fmtInt(NODES)} node key pairs (node-side work, not timed)`);
    const keys = Array.from({ length: NODES }, () => nodeKeys());
    log(`enroll: ${fmtInt(NODES)} joins, ${CONCURRENCY} in flight`);
    const u = await enrollments(h, keys);
    const raw = await rawRequests(h, NODES, u.requestBytes, u.replyBytes);
    const [up50, up99] = percentiles(u.lat, [50, 99]);
    const [rp50, rp99] = percentiles(raw.lat, [50, 99]);
    const uRate = (NODES - u.failures) / (u.seconds + u.projectedAfter);
    const rawRate = NODES / raw.seconds;
    log(`enroll: ${REVOCATIONS} revocations`);
    const cuts = await revocations(h, keys, u.configs);
    const rawCuts = await rawRevocations(h);
    for (const k of keys) k.seed.fill(0);
    const [c50, c99] = percentiles(cuts, [50, 99]);
    const [rc50, rc99] = percentiles(rawCuts, [50, 99]);
    const missed = cuts.filter((c) => !Number.isFinite(c)).length;
    const pass = missed === 0 && c99! < CUT_TARGET_MS;
    return {
      name: "enroll",
      title: "Enrollment rate and revocation cut time",
      description: `In-process control plane on a secured server (operator mode, TLS, at-rest encryption; \`startSecurePlane\`). ${fmtInt(NODES)} nodes join with one ${fmtInt(NODES)}-use invite over its bootstrap credential, ${CONCURRENCY} joins in flight: each is a proof check, the invite check, an overlay address, a NodeEnrolled and an IdentityIssued event and a minted JWT, counted until UNIBUS_nodes holds them all. Raw: a NATS request/reply of the same sizes to a plain responder on the same server. Then ${REVOCATIONS} revocations, one at a time, each timed from sending \`node.revoke\` to the node's connection closing; raw: pushing an account JWT with a fresh user revoked ($SYS.REQ.CLAIMS.UPDATE) to its connection closing.`,
      headers: ["", "unibus", "raw NATS", "unibus / raw"],
      rows: [
        ["enrollments/s (until projected)", fmtInt(uRate), fmtInt(rawRate), fmtRatio(uRate / rawRate)],
        ["join latency p50 / p99 (ms)", `${fmtMs(up50!)} / ${fmtMs(up99!)}`, `${fmtMs(rp50!)} / ${fmtMs(rp99!)}`, ""],
        [
          "refused joins",
          `${fmtInt(u.failures)}${
            u.failures
              ? ` (${Object.entries(u.refusals)
                  .map(([c, n]) => `${c} ${n}`)
                  .join(", ")})`
              : ""
          }`,
          "",
          "",
        ],
        ["projection caught up after the last reply (ms)", fmtMs(u.projectedAfter * 1000), "", ""],
        [
          "revoke → cut p50 / p99 (ms)",
          `${fmtMs(c50!)} / ${fmtMs(c99!)}`,
          `${fmtMs(rc50!)} / ${fmtMs(rc99!)}`,
          fmtRatio(c50! / rc50!),
        ],
        [
          "connections not cut within 10 s",
          fmtInt(missed),
          fmtInt(rawCuts.filter((c) => !Number.isFinite(c)).length),
          "",
        ],
      ],
      target: `every revoked connection cut, p99 < ${fmtInt(CUT_TARGET_MS)} ms (issue 3: within 2 s); the enrollment rate has no target`,
      measured: `revoke → cut p99 ${fmtMs(c99!)} ms; ${fmtInt(uRate)} enrollments/s`,
      pass,
      notes: [
        "All enrollments go through one `fleet/main` aggregate (invites, names, keys and addresses are one consistency boundary), so concurrent joins serialize on its expected sequence and retry; the rate is bounded by that, by design.",
        "The revoke time includes the admin's signed command through the pipeline, the NodeRevoked and IdentityRevoked appends, then the account JWT push; the raw column is the push alone.",
      ],
      seconds: (now() - started) / 1000,
    };
  } finally {
    await h.stop();
  }
}
