// Issue 25's figures: end-to-end encrypted room messages, send → read, against a raw core
// publish/subscribe of the same bytes on the same server; and the time to rotate a room of 1,000
// members. The plane runs in this process on the secured server membershipd runs (operator mode,
// TLS, at-rest encryption), with the real room actions, streams and projections.
import { DeliverPolicy, jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "../services/bus/mod.ts";
import { newUserSeed, signerFromSeed, type KexPair, type Signer } from "../services/core/mod.ts";
import {
  encryptMessage,
  newEpochKey,
  roomCryptoReady,
  sealEpochKey,
  SendingRatchet,
} from "../services/core/room-crypto/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import {
  fetchRoomKeys,
  forgetKeys,
  newKexSeed,
  openRoomKeys,
  openRoomReader,
  readPage,
  rotateRoom,
} from "../services/cli/rooms/mod.ts";
import { kexPairFromSeed } from "../services/core/vault/mod.ts";
import { startSimFleetPlane } from "./sim-fleet.ts";
import { fmtInt, fmtMs, fmtRatio, log, now, percentiles, scaled, type BenchResult } from "./common.ts";

const LATENCY_MESSAGES = scaled(300);
const THROUGHPUT_MESSAGES = scaled(2000);
const IN_FLIGHT = 16;
const MEMBERS = scaled(1000);
const TEXT = "x".repeat(200);

interface Member {
  handle: string;
  signer: Signer;
  kex: KexPair;
  kexKey: string;
}

async function newMember(handle: string): Promise<Member> {
  const seed = newUserSeed();
  const signer = signerFromSeed(seed);
  seed.fill(0);
  const k = newKexSeed();
  const kex = await kexPairFromSeed(k.seed);
  return { handle, signer, kex, kexKey: k.publicKey };
}

type Send = (action: string, args: Record<string, unknown>) => Promise<any>;

function sender(nc: NatsConnection, signer: Signer, handle: string): Send {
  return async (action, args) => {
    const r = await sendCommand(
      nc,
      `unibus.cmd.membership.${action}`,
      buildCommand(signer, handle, action, args),
      30_000,
    );
    if (!r.ok) throw new Error(`${action}: ${r.error.code} ${r.error.message}`);
    return r.result;
  };
}

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

export async function run(): Promise<BenchResult> {
  const started = now();
  await roomCryptoReady();
  const fleet = await startSimFleetPlane("rooms", 1);
  const { h, send: adminSend } = fleet;
  const subNc = await connectNats({ servers: h.nats.url, name: "bench-rooms-raw-sub" });
  try {
    // The bootstrap admin (the plane's signing seed) gets an exchange key of this bench's.
    const adminKex = newKexSeed();
    const admin = { kex: await kexPairFromSeed(adminKex.seed) };
    await adminSend("user.kex", { handle: "admin", kex_key: adminKex.publicKey });
    const bob = await newMember("bob");
    await adminSend("user.add", {
      handle: "bob",
      role: "monitor",
      sign_key: bob.signer.publicKey,
      kex_key: bob.kexKey,
    });
    await adminSend("room.create", { room: "bench", subject: "" });
    await adminSend("member.add", { room: "bench", user: "admin", role: "owner" });
    await adminSend("member.add", { room: "bench", user: "bob", role: "member" });
    const asBob = sender(h.nc, bob.signer, "bob");
    const client = { send: adminSend, room: "bench", me: "admin" };
    await rotateRoom(client, "first");
    const keys = openRoomKeys(await fetchRoomKeys(adminSend, "bench"), admin.kex);
    const epoch = keys.view.current!.epoch;
    const ratchet = SendingRatchet.start(keys.epochKeys.get(epoch)!, "bench", epoch, "admin");
    forgetKeys(keys);
    const adminSigner = fleet.adminSigner;
    const encrypt = () => {
      const step = ratchet.next()!;
      const m = encryptMessage({
        room: "bench",
        epoch,
        sender: "admin",
        senderSignKey: adminSigner,
        counter: step.counter,
        messageKey: step.messageKey,
        body: { text: TEXT },
        sentAt: new Date().toISOString(),
      });
      step.messageKey.fill(0);
      if (!m.ok) throw new Error(m.error.message);
      return m.value;
    };

    // The reader: bob, long-polling room.read, decoding each message; arrivals by counter.
    const reader = await openRoomReader(asBob, "bench", bob.kex);
    const arrived = new Map<number, number>();
    let waiters: Array<() => void> = [];
    let after = 0;
    let reading = true;
    const readLoop = (async () => {
      while (reading) {
        const page = await readPage(reader, after, { waitMs: 2000 });
        for (const m of page.messages) {
          after = Math.max(after, m.seq);
          if (m.result.kind === "ok") arrived.set(m.result.counter, now());
          else throw new Error(`bench room message ${m.seq}: ${m.result.kind} ${m.result.detail}`);
        }
        const ws = waiters;
        waiters = [];
        for (const w of ws) w();
      }
    })();
    const arrivalOf = async (counter: number) => {
      while (!arrived.has(counter)) await new Promise<void>((r) => waiters.push(r));
      return arrived.get(counter)!;
    };

    // Send → read, one message at a time.
    const e2e: number[] = [];
    for (let i = 0; i < LATENCY_MESSAGES; i++) {
      const t0 = now();
      const m = encrypt();
      await adminSend("room.send", { room: "bench", message: m });
      e2e.push((await arrivalOf(m.counter)) - t0);
    }
    // Throughput: IN_FLIGHT sends at once, until the reader has them all.
    const first = ratchet.counter;
    const t0 = now();
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < THROUGHPUT_MESSAGES) {
          next++;
          await adminSend("room.send", { room: "bench", message: encrypt() });
        }
      }),
    );
    await arrivalOf(first + THROUGHPUT_MESSAGES - 1);
    for (let c = first; c < first + THROUGHPUT_MESSAGES; c++) await arrivalOf(c);
    const uniThroughputMs = now() - t0;
    reading = false;
    await readLoop;
    log(
      `rooms: send→read p50 ${fmtMs(percentiles(e2e, [50])[0]!)} ms, ${fmtInt((THROUGHPUT_MESSAGES / uniThroughputMs) * 1000)} msg/s`,
    );

    // The raw baseline: the same bytes, core publish on one connection, subscribe on another.
    const sample = JSON.stringify(encrypt());
    const raw = await rawPubSub(h.nc, subNc, sample);
    log(
      `rooms: raw p50 ${fmtMs(percentiles(raw.latency, [50])[0]!)} ms, ${fmtInt((THROUGHPUT_MESSAGES / raw.throughputMs) * 1000)} msg/s`,
    );
    const stored = await rawJetStream(h.nc, subNc, sample);
    log(`rooms: raw JetStream p50 ${fmtMs(percentiles(stored.latency, [50])[0]!)} ms`);

    // Rotation of a room of MEMBERS members (plus the admin).
    const members = await Promise.all(Array.from({ length: MEMBERS }, (_, i) => newMember(`m${i}`)));
    await adminSend("room.create", { room: "big", subject: "" });
    await adminSend("member.add", { room: "big", user: "admin", role: "owner" });
    await inBatches(members, 32, (m) =>
      adminSend("user.add", { handle: m.handle, role: "monitor", sign_key: m.signer.publicKey, kex_key: m.kexKey }),
    );
    await inBatches(members, 32, (m) => adminSend("member.add", { room: "big", user: m.handle, role: "member" }));
    const sealT0 = now();
    const key = newEpochKey();
    for (const m of members) sealEpochKey(key, "big", 1, m.kexKey);
    const sealMs = now() - sealT0;
    key.fill(0);
    const rotT0 = now();
    const rotated = await rotateRoom({ send: adminSend, room: "big", me: "admin" }, "first");
    const rotateMs = now() - rotT0;
    const sealedTo = rotated.view.current?.sealed_to.length ?? 0;
    log(`rooms: rotation of ${MEMBERS + 1} members in ${fmtMs(rotateMs)} ms (sealing alone ${fmtMs(sealMs)} ms)`);
    return result({ e2e, uniThroughputMs, raw, stored, rotateMs, sealMs, sealedTo, started });
  } finally {
    await subNc.close().catch(() => {});
    await fleet.stop([]);
  }
}

/**
 * The same bytes stored: a JetStream publish (its ack awaited) to a file stream on the same server,
 * an ordered consumer on another connection receiving them; sequential, then IN_FLIGHT at once.
 */
async function rawJetStream(pub: NatsConnection, sub: NatsConnection, payload: string) {
  const stream = "BENCH_ROOMS_RAW";
  const jsm = await jetstreamManager(pub);
  await jsm.streams.add({ name: stream, subjects: ["bench.rooms.js"], storage: StorageType.File });
  const consumer = await jetstream(sub).consumers.get(stream, { deliver_policy: DeliverPolicy.New });
  let received = 0;
  let wake: (() => void) | null = null;
  const messages = await consumer.consume({
    callback: () => {
      received++;
      wake?.();
    },
  });
  const js = jetstream(pub);
  const until = async (n: number) => {
    while (received < n) await new Promise<void>((r) => (wake = r));
  };
  try {
    const latency: number[] = [];
    for (let i = 0; i < LATENCY_MESSAGES; i++) {
      const t0 = now();
      await js.publish("bench.rooms.js", payload);
      await until(i + 1);
      latency.push(now() - t0);
    }
    const t0 = now();
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < THROUGHPUT_MESSAGES) {
          next++;
          await js.publish("bench.rooms.js", payload);
        }
      }),
    );
    await until(LATENCY_MESSAGES + THROUGHPUT_MESSAGES);
    return { latency, throughputMs: now() - t0 };
  } finally {
    await messages.close();
    await jsm.streams.delete(stream).catch(() => {});
  }
}

/** Sequential publish → receive latencies, then THROUGHPUT_MESSAGES published back to back until all are received. */
async function rawPubSub(pub: NatsConnection, sub: NatsConnection, payload: string) {
  const subject = "bench.rooms.raw";
  let received = 0;
  let wake: (() => void) | null = null;
  const s = sub.subscribe(subject, {
    callback: () => {
      received++;
      wake?.();
    },
  });
  await sub.flush();
  const latency: number[] = [];
  for (let i = 0; i < LATENCY_MESSAGES; i++) {
    const want = received + 1;
    const t0 = now();
    pub.publish(subject, payload);
    while (received < want) await new Promise<void>((r) => (wake = r));
    latency.push(now() - t0);
  }
  const base = received;
  const t0 = now();
  for (let i = 0; i < THROUGHPUT_MESSAGES; i++) {
    pub.publish(subject, payload);
    if (i % 100 === 99) await pub.flush();
  }
  while (received < base + THROUGHPUT_MESSAGES) await new Promise<void>((r) => (wake = r));
  const throughputMs = now() - t0;
  s.unsubscribe();
  return { latency, throughputMs };
}

function result(r: {
  e2e: number[];
  uniThroughputMs: number;
  raw: { latency: number[]; throughputMs: number };
  stored: { latency: number[]; throughputMs: number };
  rotateMs: number;
  sealMs: number;
  sealedTo: number;
  started: number;
}): BenchResult {
  const [u50, u99] = percentiles(r.e2e, [50, 99]) as [number, number];
  const [r50, r99] = percentiles(r.raw.latency, [50, 99]) as [number, number];
  const [s50, s99] = percentiles(r.stored.latency, [50, 99]) as [number, number];
  const sRate = (THROUGHPUT_MESSAGES / r.stored.throughputMs) * 1000;
  const uRate = (THROUGHPUT_MESSAGES / r.uniThroughputMs) * 1000;
  const rRate = (THROUGHPUT_MESSAGES / r.raw.throughputMs) * 1000;
  return {
    name: "rooms",
    title: "Room messages, end to end encrypted",
    description:
      `Send → read of ${fmtInt(LATENCY_MESSAGES)} messages one at a time (a ${TEXT.length}-character text: encrypted and signed by the ` +
      "sender, `room.send` through membershipd into the room's stream, a member's long-polling `room.read`, signature check and " +
      `decryption), then ${fmtInt(THROUGHPUT_MESSAGES)} messages ${IN_FLIGHT} in flight until the reader has decoded them all; against ` +
      "a raw core publish → subscribe of the same message bytes on the same server (no stream, no check). Then the rotation of a room " +
      `of ${fmtInt(MEMBERS + 1)} members: a new epoch key sealed to each and sent in \`room.key_rotate\` and \`room.key_seal\` (100 copies each).`,
    headers: ["", "p50 (ms)", "p99 (ms)", "msg/s", "ratio to raw (p50 / rate)"],
    rows: [
      ["raw publish → subscribe", fmtMs(r50), fmtMs(r99), fmtInt(rRate), "1.00×"],
      [
        "raw JetStream publish (acked) → ordered consumer",
        fmtMs(s50),
        fmtMs(s99),
        fmtInt(sRate),
        `${fmtRatio(s50 / r50)} / ${fmtRatio(rRate / sRate)}`,
      ],
      [
        "**unibus room send → read**",
        fmtMs(u50),
        fmtMs(u99),
        fmtInt(uRate),
        `${fmtRatio(u50 / r50)} / ${fmtRatio(rRate / uRate)}`,
      ],
      [
        `rotation of ${fmtInt(MEMBERS + 1)} members (sealed to ${fmtInt(r.sealedTo)})`,
        fmtMs(r.rotateMs),
        "",
        "",
        `sealing alone ${fmtMs(r.sealMs)} ms`,
      ],
    ],
    target: "measured beside the raw baseline (issue 25 sets no ratio)",
    measured: `send→read p50 ${fmtRatio(u50 / r50)} raw, throughput ${fmtRatio(rRate / uRate)} below raw; rotation of ${fmtInt(MEMBERS + 1)} members ${fmtMs(r.rotateMs)} ms`,
    pass: true,
    notes: [
      "A message's send → read time includes the sender's encryption and signature, the signed command and its checks, the append to the room's stream (acknowledged), the reader's wake-up from its long poll, the read and the reader's checks and decryption.",
      "The raw side is a core publish with no stream, no signature and no acknowledgement: the floor of moving the same bytes between two clients of the server. The JetStream row stores them first (an acknowledged publish to a file stream, read by an ordered consumer): the floor of a message kept.",
      `Against that stored floor: send→read p50 ${fmtRatio(u50 / s50)}, throughput ${fmtRatio(sRate / uRate)} below.`,
    ],
    seconds: (now() - r.started) / 1000,
  };
}
