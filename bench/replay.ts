// (c) Replay: `audit replay`'s core, rebuildProjections (message gets → decodeEvent (zod) →
// MemoryProjections), over 200,000 valid signed events, against a raw ordered consumer that reads
// the same messages and only counts them. Rounds alternate so neither side gets a warmer cache.
import { headers } from "@nats-io/transport-node";
import {
  decodeEvent,
  ensureEventStream,
  eventSubject,
  lastSequence,
  readEventMessages,
  toStoredEvent,
} from "../services/bus/mod.ts";
import { rebuildProjections } from "../services/cli/audit.ts";
import { checkEvent, MemoryProjections, VerifiedBatches } from "../services/core/mod.ts";
import { clientFor } from "../test/harness.ts";
import type { QuarantineFinding } from "../services/core/mod.ts";
import {
  buildEvent,
  signLoad,
  microUs,
  newAggregateDraft,
  type NewEvent,
  fmtInt,
  fmtMs,
  fmtRatio,
  log,
  newWriter,
  now,
  rawOrderedRead,
  rawOrderedReadByCallback,
  sleep,
  benchNats,
  cpuMeter,
  fmtCpuPerEvent,
  type BenchResult,
  type CpuUse,
  scaled,
} from "./common.ts";

const EVENTS = scaled(200_000);
const CHUNK = 2_000;
const ROUNDS = 3;
const TARGET_RATIO = 0.5;

export async function run(): Promise<BenchResult> {
  const started = now();
  const nats = await benchNats();
  const { nc, js, jsm } = await clientFor(nats.url);
  try {
    await ensureEventStream(jsm, 1);
    log(`replay: writing ${fmtInt(EVENTS)} signed events (pipelined, flushed every ${fmtInt(CHUNK)})`);
    const w = newWriter();
    const writeStart = now();
    // The genesis event first, naming the bench writer: its key is then the trusted writer, and the
    // live checks (issue 21) pass every event instead of quarantining them all as untrusted.
    const genesis = buildEvent(
      w,
      `genesis-rp`,
      "system",
      "genesis",
      "SystemInitialized",
      {
        cluster: "bench",
        service_key: w.signer.publicKey,
      },
      null,
    );
    await js.publish(eventSubject("system", "genesis"), JSON.stringify(genesis));
    // Setup only: the same message appendEvents would send (Nats-Msg-Id, expected last subject
    // sequence 0), but as pipelined core publishes with a flush per chunk instead of one awaited
    // ack per event; signing the next chunk overlaps with the server storing the last one.
    // Signed as AggregateStore signs under load (signLoad "batched": an EventSigner, up to 64 events
    // to a signature) and published as the canonical bytes signing made.
    let sample: NewEvent[] = [];
    for (let from = 0; from < EVENTS; from += CHUNK) {
      const n = Math.min(EVENTS, from + CHUNK) - from;
      const chunk = await signLoad(
        Array.from({ length: n }, (_v, j) => newAggregateDraft(w, "rp", from + j)),
        w,
        "batched",
      );
      if (from === 0) sample = chunk;
      for (const e of chunk) {
        const h = headers();
        h.set("Nats-Msg-Id", e.env.id);
        h.set("Nats-Expected-Last-Subject-Sequence", "0");
        nc.publish(e.subject, e.bytes, { headers: h });
      }
      await nc.flush();
    }
    for (const deadline = now() + 120_000; (await lastSequence(jsm)) < EVENTS + 1 && now() < deadline; )
      await sleep(100);
    const writeSeconds = (now() - writeStart) / 1000;
    const lastSeq = await lastSequence(jsm);
    if (lastSeq !== EVENTS + 1) throw new Error(`expected ${EVENTS + 1} events in the stream, found ${lastSeq}`);
    log(`replay: wrote ${fmtInt(EVENTS)} events in ${writeSeconds.toFixed(1)} s`);

    const pid = nats.proc.pid;
    /** Times one full read of events 1..lastSeq; returns seconds and the CPU it took. */
    const timed = async (read: () => Promise<number>) => {
      const cpu = cpuMeter(pid);
      const t = now();
      const count = await read();
      const seconds = (now() - t) / 1000;
      if (count !== lastSeq) throw new Error(`read ${count} of ${lastSeq} events`);
      return { seconds, cpu: cpu() };
    };
    const rawRead = () => rawOrderedRead(js, 1, lastSeq, () => {});
    let buckets = "";
    const rebuild = async () => {
      const quarantined: QuarantineFinding[] = [];
      const memory = await rebuildProjections(jsm, lastSeq, false, { quarantined });
      if (quarantined.length) throw new Error(`the checked rebuild quarantined ${quarantined.length} bench events`);
      buckets = [...memory.buckets].map(([name, m]) => `${name} ${fmtInt(m.size)}`).join(", ");
      return lastSeq;
    };
    // The same rebuild with the live checks off (decodeEvent only, as before issue 21).
    const rebuildUnchecked = async () => {
      await rebuildProjections(jsm, lastSeq, false, { checks: false });
      return lastSeq;
    };
    // Two layers of rebuildProjections on their own, to show where its time goes.
    const generatorOnly = async () => {
      let n = 0;
      for await (const _m of readEventMessages(nc, jsm, { untilSeq: lastSeq })) n++;
      return n;
    };
    const withDecode = async () => {
      let n = 0;
      for await (const m of readEventMessages(nc, jsm, { untilSeq: lastSeq })) {
        toStoredEvent(decodeEvent(m.data), m.seq);
        n++;
      }
      return n;
    };

    // Two references beside the comparison, to show how far the target is from this machine's
    // floor: the raw side through consume()'s callback (a faster nats.js mode than the iterator
    // both compared sides use), and the rebuild with JSON.parse and nothing else in place of
    // decodeEvent (no schema checks: what replay would cost if it trusted the stream).
    const rawByCallback = () => rawOrderedReadByCallback(js, 1, lastSeq);
    const unchecked = async () => {
      const memory = new MemoryProjections();
      const utf8 = new TextDecoder();
      for await (const m of readEventMessages(nc, jsm, { untilSeq: lastSeq }))
        memory.apply(toStoredEvent(JSON.parse(utf8.decode(m.data)), m.seq));
      return lastSeq;
    };

    const raw: { seconds: number; cpu: CpuUse }[] = [];
    const uni: { seconds: number; cpu: CpuUse }[] = [];
    const offs: { seconds: number; cpu: CpuUse }[] = [];
    let gen = { seconds: NaN, cpu: { nodeMs: NaN, natsMs: NaN } as CpuUse };
    let dec = gen;
    const cbs: { seconds: number; cpu: CpuUse }[] = [];
    const bares: { seconds: number; cpu: CpuUse }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(await timed(rawRead));
      log(`replay: round ${r + 1} raw                        ${fmtInt(lastSeq / raw[r]!.seconds)} ev/s`);
      if (r === 0) {
        gen = await timed(generatorOnly);
        log(`replay: round 1 readEventMessages only    ${fmtInt(lastSeq / gen.seconds)} ev/s`);
        dec = await timed(withDecode);
        log(`replay: round 1 readEventMessages+decode  ${fmtInt(lastSeq / dec.seconds)} ev/s`);
      }
      uni.push(await timed(rebuild));
      log(`replay: round ${r + 1} rebuildProjections         ${fmtInt(lastSeq / uni[r]!.seconds)} ev/s`);
      offs.push(await timed(rebuildUnchecked));
      log(`replay: round ${r + 1} rebuild, live checks off   ${fmtInt(lastSeq / offs[r]!.seconds)} ev/s`);
      cbs.push(await timed(rawByCallback));
      log(`replay: round ${r + 1} reference: raw by callback  ${fmtInt(lastSeq / cbs[r]!.seconds)} ev/s`);
      bares.push(await timed(unchecked));
      log(`replay: round ${r + 1} reference: no schema checks ${fmtInt(lastSeq / bares[r]!.seconds)} ev/s`);
    }
    const costs = await checkCosts(sample, w);
    const bestOf = (xs: { seconds: number; cpu: CpuUse }[]) => xs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    const u = bestOf(uni);
    const off = bestOf(offs);
    const b = bestOf(raw);
    const ratio = b.seconds / u.seconds;
    const cb = bestOf(cbs);
    const bare = bestOf(bares);
    const cpuUs = (c: CpuUse) => fmtCpuPerEvent(c, lastSeq);
    const cpuRatio = (c: CpuUse) => fmtRatio((c.nodeMs + c.natsMs) / (b.cpu.nodeMs + b.cpu.natsMs));
    const rate = (x: { seconds: number }) => fmtInt(lastSeq / x.seconds);
    /** One measured layer against the raw consumer's best round. */
    const row = (label: string, m: { seconds: number; cpu: CpuUse }) => [
      label,
      rate(m),
      fmtRatio(b.seconds / m.seconds),
      fmtMs(m.seconds * 1000),
      cpuUs(m.cpu),
      cpuRatio(m.cpu),
    ];
    return {
      name: "replay",
      title: "Replay (audit replay core)",
      description:
        `\`rebuildProjections(jsm, lastSeq, false)\` over ${fmtInt(lastSeq)} valid signed events (every event a new aggregate: rooms, users, memberships) ` +
        "vs a raw ordered consumer (same options as readEventMessages: the whole stream without a subject filter, max_messages 2048) that only counts the same messages. " +
        `${ROUNDS} alternating rounds per side; the best round of each is compared. Round 1 also times two layers of rebuildProjections alone ` +
        "(readEventMessages without decoding; readEventMessages + decodeEvent without projecting) to show where the time goes, " +
        "and each round also times two references that are not part of the comparison: the raw consumer through consume()'s callback, and the rebuild with a bare JSON.parse in place of decodeEvent's schema checks.",
      headers: ["", "events/s", "ratio to raw", "time (ms)", "CPU µs per event: client + server", "CPU ratio to raw"],
      rows: [
        ["raw ordered consumer (best round)", rate(b), "1.00×", fmtMs(b.seconds * 1000), cpuUs(b.cpu), "1.00×"],
        row("readEventMessages only (round 1)", gen),
        row("+ decodeEvent, toStoredEvent (round 1)", dec),
        row("**unibus rebuildProjections** (best round)", u),
        row("rebuildProjections with the live checks off (best round)", off),
        row("reference: raw consumer by consume() callback (best round)", cb),
        row("reference: rebuild with bare JSON.parse, no schema checks (best round)", bare),
        [
          "per-round events/s: raw | rebuildProjections",
          raw.map(rate).join(", "),
          "",
          uni.map(rate).join(", "),
          "",
          "",
        ],
        [
          "per-round events/s: raw by callback | no schema checks",
          cbs.map(rate).join(", "),
          "",
          bares.map(rate).join(", "),
          "",
          "",
        ],
      ],
      target: `≥ ${TARGET_RATIO}× raw throughput`,
      measured: `${fmtRatio(ratio)} raw`,
      pass: ratio >= TARGET_RATIO,
      notes: [
        `Setup (not timed in the comparison): ${fmtInt(EVENTS)} events signed and published (pipelined core publishes with the appendEvents headers, a flush every ${fmtInt(CHUNK)}) in ${writeSeconds.toFixed(1)} s (${fmtInt(EVENTS / writeSeconds)} events/s).`,
        `Rebuilt projections: ${buckets}.`,
        `Live checks (issue 21: schema, signature or batch proof, trusted writer, hash chain per event, \`checkEvent\`): the checked rebuild reads at ${fmtRatio(off.seconds / u.seconds)} the rate of the same rebuild with them off (${rate(u)} against ${rate(off)} events/s; ratios to raw ${fmtRatio(ratio)} against ${fmtRatio(b.seconds / off.seconds)}). ` +
          "The events are signed as AggregateStore signs them under load, through an EventSigner (up to 64 to one signature over a Merkle root, each with its inclusion proof), and stored as the canonical bytes signing made; the rebuild's checker keeps the batches it verified (VerifiedBatches), so each batch's signature is verified once and its other events by their leaf against nodes already proven.",
        `Per event on one thread (best of 5 passes over ${fmtInt(costs.events)} of these stored events, no NATS): decodeEvent (the checks-off path) ${costs.decode.toFixed(1)} µs; checkEvent, batch-signed, a fresh VerifiedBatches per pass ${costs.batched.toFixed(1)} µs; ` +
          `checkEvent of the same events signed one per signature (an idle writer's form; one Ed25519 verify each, which no cache can save) ${costs.single.toFixed(1)} µs.`,
        "CPU µs per event = CPU time of this process and of the nats-server during the read, divided by events read.",
        `References (best of their rounds, not judged): the raw consumer by callback read ${rate(cb)} events/s; against it the checked rebuild's best round is ${fmtRatio(cb.seconds / u.seconds)} and the rebuild without schema checks ${fmtRatio(cb.seconds / bare.seconds)}. ` +
          "The target is judged against the iterator, the nats.js mode readEventMessages reads through.",
      ],
      seconds: (now() - started) / 1000,
    };
  } finally {
    await nc.close();
    await nats.stop();
  }
}

/** checkEvent's cost per event on one thread against decodeEvent's, batch-signed and singly signed. */
async function checkCosts(
  batched: NewEvent[],
  w: ReturnType<typeof newWriter>,
): Promise<{ events: number; decode: number; batched: number; single: number }> {
  const trust = { trusts: () => true };
  const check = (e: NewEvent, i: number, batches: VerifiedBatches) =>
    checkEvent(i + 2, e.subject, e.bytes, trust, null, null, batches);
  let batches = new VerifiedBatches();
  const decode = microUs(batched, (e) => decodeEvent(e.bytes));
  // A fresh cache per pass: each pass pays every batch's one signature, as a replay does.
  const batchedUs = microUs(batched, (e, i) => {
    if (i === 0) batches = new VerifiedBatches();
    if (!check(e, i, batches).ok) throw new Error("a bench event failed its checks");
  });
  const singles = await signLoad(
    batched.slice(0, 256).map((e) => ({ subject: e.subject, draft: draftOf(e) })),
    w,
    "single",
  );
  const single = microUs(singles, (e, i) => check(e, i, batches), 3);
  return { events: batched.length, decode, batched: batchedUs, single };
}

function draftOf(e: NewEvent) {
  const { v: _v, signer: _s, sig: _sig, batch: _b, ...draft } = e.env;
  return draft;
}
