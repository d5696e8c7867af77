// (c) Replay: `audit replay`'s core, rebuildProjections (pulls from the admin's audit consumer, which
// membershipd makes → checkEvent (the compiled zod schemas, signature or batch proof, trust, chain) →
// MemoryProjections), over 200,000 valid signed events, against a raw ordered consumer that reads the
// same messages and JSON-parses each (issue 26's target: 0.7× that), beside the plain raw consumer
// that only counts them, and the same rebuild by message gets (its fallback) as a reference. Rounds
// alternate so neither side gets a warmer cache.
import { availableParallelism } from "node:os";
import { headers } from "@nats-io/transport-node";
import {
  consumerRead,
  decodeEvent,
  ensureEventStream,
  EVENTS_STREAM,
  eventSubject,
  lastSequence,
  readEventMessages,
  toStoredEvent,
} from "../services/bus/mod.ts";
import { rebuildProjections, type AuditReadAccess } from "../services/cli/audit.ts";
import {
  checkEvent,
  EventChecker,
  MemoryProjections,
  newUserSeed,
  signerFromSeed,
  VerifiedBatches,
  verifiedEventHash,
} from "../services/core/mod.ts";
import { openAuditConsumer } from "../services/membershipd/audit-actions.ts";
import { compiledEventData, compiledEventEnvelope, EventEnvelope, eventTypeInfo } from "../schemas/mod.ts";
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
/** Issue 26: `audit replay` at least this fraction of a raw consumer that JSON-parses each event. */
const TARGET_RATIO = 0.7;

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
    // The judged baseline: the same raw consumer, JSON-parsing each event's bytes and nothing more.
    const utf8 = new TextDecoder();
    let parsed = 0;
    const rawParsedRead = () =>
      rawOrderedRead(js, 1, lastSeq, (_seq, m) => {
        if (JSON.parse(utf8.decode(m.data)) !== null) parsed++;
      });
    // `audit replay`'s read: the audit consumer membershipd makes for the asking admin on its signed
    // `audit.read` (services/membershipd/audit-actions.ts), made here by the same function without
    // the command's one round trip; any fall back to message gets fails the bench.
    const auditKey = signerFromSeed(newUserSeed()).publicKey;
    const via: AuditReadAccess = {
      nc,
      open: (fromSeq) => openAuditConsumer(jsm, auditKey, fromSeq),
      onFallback: (why) => {
        throw new Error(`the audit read fell back to message gets: ${why}`);
      },
    };
    let buckets = "";
    const checkedRebuild = async (through: AuditReadAccess | undefined) => {
      const quarantined: QuarantineFinding[] = [];
      const memory = await rebuildProjections(jsm, lastSeq, false, {
        quarantined,
        ...(through ? { via: through } : {}),
      });
      if (quarantined.length) throw new Error(`the checked rebuild quarantined ${quarantined.length} bench events`);
      buckets = [...memory.buckets].map(([name, m]) => `${name} ${fmtInt(m.size)}`).join(", ");
      return lastSeq;
    };
    const rebuild = () => checkedRebuild(via);
    // The message-get path (`audit replay` when membershipd does not make the consumer), for reference.
    const rebuildByGets = () => checkedRebuild(undefined);
    // The same rebuild with the live checks off (decodeEvent only, as before issue 21).
    const rebuildUnchecked = async () => {
      await rebuildProjections(jsm, lastSeq, false, { checks: false, via });
      return lastSeq;
    };
    // Two layers of rebuildProjections on their own, to show where its time goes: its read (pulls
    // from the audit consumer, consumerRead) without checking or projecting anything, and that read
    // with every event's checks (EventChecker) but no projections.
    const pulled = async () => {
      const grant = await openAuditConsumer(jsm, auditKey, 1);
      return consumerRead(nc, jsm, EVENTS_STREAM, grant.consumer, {
        fromSeq: 1,
        untilSeq: lastSeq,
        onFallback: via.onFallback!,
      });
    };
    const readOnly = async () => {
      let n = 0;
      for await (const batch of await pulled()) for (const m of batch) if (m.data.length > 0) n++;
      return n;
    };
    const withChecks = async () => {
      const checker = new EventChecker();
      let n = 0;
      for await (const batch of await pulled())
        for (const m of batch) {
          if (!checker.check(m.seq, m.subject, m.data).ok) throw new Error(`event ${m.seq} failed its checks`);
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
    const rawParsed: { seconds: number; cpu: CpuUse }[] = [];
    const uni: { seconds: number; cpu: CpuUse }[] = [];
    const offs: { seconds: number; cpu: CpuUse }[] = [];
    const gens: { seconds: number; cpu: CpuUse }[] = [];
    const decs: { seconds: number; cpu: CpuUse }[] = [];
    const cbs: { seconds: number; cpu: CpuUse }[] = [];
    const bares: { seconds: number; cpu: CpuUse }[] = [];
    const getsRounds: { seconds: number; cpu: CpuUse }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(await timed(rawRead));
      log(`replay: round ${r + 1} raw                        ${fmtInt(lastSeq / raw[r]!.seconds)} ev/s`);
      rawParsed.push(await timed(rawParsedRead));
      log(`replay: round ${r + 1} raw + JSON.parse           ${fmtInt(lastSeq / rawParsed[r]!.seconds)} ev/s`);
      gens.push(await timed(readOnly));
      log(`replay: round ${r + 1} consumerRead only          ${fmtInt(lastSeq / gens[r]!.seconds)} ev/s`);
      decs.push(await timed(withChecks));
      log(`replay: round ${r + 1} consumerRead + checks      ${fmtInt(lastSeq / decs[r]!.seconds)} ev/s`);
      uni.push(await timed(rebuild));
      log(`replay: round ${r + 1} rebuildProjections         ${fmtInt(lastSeq / uni[r]!.seconds)} ev/s`);
      getsRounds.push(await timed(rebuildByGets));
      log(`replay: round ${r + 1} rebuild by message gets    ${fmtInt(lastSeq / getsRounds[r]!.seconds)} ev/s`);
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
    const gen = bestOf(gens);
    const dec = bestOf(decs);
    const p = bestOf(rawParsed);
    if (parsed !== lastSeq * ROUNDS) throw new Error(`the raw consumer parsed ${parsed} events`);
    /** The judged ratio: the checked rebuild against the raw consumer that JSON-parses each event. */
    const ratio = p.seconds / u.seconds;
    const plainRatio = b.seconds / u.seconds;
    const cb = bestOf(cbs);
    const bare = bestOf(bares);
    const byGets = bestOf(getsRounds);
    const cpuUs = (c: CpuUse) => fmtCpuPerEvent(c, lastSeq);
    const cpuRatio = (c: CpuUse) => fmtRatio((c.nodeMs + c.natsMs) / (b.cpu.nodeMs + b.cpu.natsMs));
    const rate = (x: { seconds: number }) => fmtInt(lastSeq / x.seconds);
    /** One measured layer against the raw consumers' best rounds. */
    const row = (label: string, m: { seconds: number; cpu: CpuUse }) => [
      label,
      rate(m),
      fmtRatio(p.seconds / m.seconds),
      fmtRatio(b.seconds / m.seconds),
      fmtMs(m.seconds * 1000),
      cpuUs(m.cpu),
      cpuRatio(m.cpu),
    ];
    const perRound = (label: string, xs: { seconds: number }[]) => [
      `per-round events/s: ${label}`,
      xs.map(rate).join(", "),
      "",
      "",
      "",
      "",
      "",
    ];
    const cpu = (c: CpuUse) => `${cpuUs(c)} µs`;
    /** CPU µs per event the machine has, all cores, at the target rate. */
    const budget = (availableParallelism() * 1e6) / (TARGET_RATIO * (lastSeq / p.seconds));
    return {
      name: "replay",
      title: "Replay (audit replay core)",
      description:
        `\`rebuildProjections(jsm, lastSeq, false, { via })\` (what \`audit replay\` runs: pulls from the admin's audit consumer, which membershipd makes on \`audit.read\` (made here by the same function, openAuditConsumer, without the command's round trip), every event's checks, the projections in memory) over ${fmtInt(lastSeq)} valid signed events (every event a new aggregate: rooms, users, memberships) ` +
        "vs a raw ordered consumer (same options as readEventMessages: the whole stream without a subject filter, max_messages 2048) that JSON-parses each of the same messages (the target's baseline), and beside it the same consumer only counting them (plain raw). " +
        `${ROUNDS} alternating rounds per side; the best round of each is compared. Each round also times the same rebuild by message gets (\`audit replay\` without its audit consumer: membershipd down, or a JWT minted before the grant), and two layers of rebuildProjections alone ` +
        "(its read, consumerRead from the audit consumer, without checking or projecting; that read with every event's checks, EventChecker, without projecting) to show where the time goes, " +
        "and two references that are not part of the comparison: the raw consumer through consume()'s callback, and a rebuild read through the ordered consumer with a bare JSON.parse in place of the checks.",
      headers: [
        "",
        "events/s",
        "ratio to raw + JSON.parse",
        "ratio to raw",
        "time (ms)",
        "CPU µs per event: client + server",
        "CPU ratio to raw",
      ],
      rows: [
        row("raw ordered consumer, JSON.parse each event (best round)", p),
        [
          "raw ordered consumer, counting only (best round)",
          rate(b),
          fmtRatio(p.seconds / b.seconds),
          "1.00×",
          fmtMs(b.seconds * 1000),
          cpuUs(b.cpu),
          "1.00×",
        ],
        row("rebuildProjections' read alone: consumerRead, pulls from the audit consumer (best round)", gen),
        row("+ EventChecker.check, no projections (best round)", dec),
        row("**unibus rebuildProjections** (`audit replay`, audit consumer, best round)", u),
        row("rebuildProjections with the live checks off (best round)", off),
        row("reference: rebuildProjections by message gets (`audit replay` without its consumer, best round)", byGets),
        row("reference: raw consumer by consume() callback (best round)", cb),
        row("reference: rebuild through the ordered consumer, bare JSON.parse, no checks (best round)", bare),
        perRound("raw + JSON.parse", rawParsed),
        perRound("raw", raw),
        perRound("rebuildProjections", uni),
        perRound("rebuild by message gets", getsRounds),
        perRound("live checks off", offs),
        perRound("raw by callback", cbs),
        perRound("ordered consumer, no checks", bares),
      ],
      target: `≥ ${TARGET_RATIO}× a raw consumer that JSON-parses each event (issue 26)`,
      measured: `${fmtRatio(ratio)} raw + JSON.parse (${fmtRatio(plainRatio)} plain raw)`,
      pass: ratio >= TARGET_RATIO,
      notes: [
        `Setup (not timed in the comparison): ${fmtInt(EVENTS)} events signed and published (pipelined core publishes with the appendEvents headers, a flush every ${fmtInt(CHUNK)}) in ${writeSeconds.toFixed(1)} s (${fmtInt(EVENTS / writeSeconds)} events/s).`,
        `Rebuilt projections: ${buckets}.`,
        `Where the time goes (best rounds, CPU µs per event, client + server): the raw consumer that JSON-parses ${cpu(p.cpu)}; rebuildProjections' read alone, pulled from the audit consumer, ${cpu(gen.cpu)} ` +
          `at ${rate(gen)} events/s, ${fmtRatio(p.seconds / gen.seconds)} the raw + JSON.parse rate before a single check. ` +
          `With every event's checks ${cpu(dec.cpu)} at ${rate(dec)} events/s; the whole rebuild ${cpu(u.cpu)} at ${rate(u)} events/s. ` +
          `At ${TARGET_RATIO}× the raw + JSON.parse rate (${fmtInt(TARGET_RATIO * (lastSeq / p.seconds))} events/s) this machine's ${availableParallelism()} cores would have ${budget.toFixed(0)} µs of CPU per event for client and server together. ` +
          `By message gets (one request and reply per event; nats-server 2.9 has no batched get) the same rebuild takes ${cpu(byGets.cpu)} at ${rate(byGets)} events/s (${fmtRatio(p.seconds / byGets.seconds)} the raw + JSON.parse rate; the audit consumer's rebuild is ${fmtRatio(byGets.seconds / u.seconds)} its rate).`,
        `Per event on one thread (best of 5 passes over ${fmtInt(costs.events)} of these stored events, no NATS): JSON.parse ${costs.json.toFixed(1)} µs; the envelope and data schemas ${costs.compiled.toFixed(1)} µs as compiled (schemas/compiled.ts, z.compile; the hot paths' form) against ${costs.zod.toFixed(1)} µs through zod's runtime parser; ` +
          `the batch proof and the event hash (verifiedEventHash, a fresh VerifiedBatches per pass, so each batch's one Ed25519 verify) ${costs.hash.toFixed(1)} µs; ` +
          `decodeEvent (the checks-off path: JSON.parse and the schemas) ${costs.decode.toFixed(1)} µs; checkEvent, batch-signed, ${costs.batched.toFixed(1)} µs; ` +
          `checkEvent of the same events signed one per signature (an idle writer's form; one Ed25519 verify each, which no cache can save) ${costs.single.toFixed(1)} µs.`,
        `Live checks (issue 21: schema, signature or batch proof, trusted writer, hash chain per event, \`checkEvent\`): the checked rebuild reads at ${fmtRatio(off.seconds / u.seconds)} the rate of the same rebuild with them off (${rate(u)} against ${rate(off)} events/s; ratios to raw + JSON.parse ${fmtRatio(ratio)} against ${fmtRatio(p.seconds / off.seconds)}). ` +
          "The events are signed as AggregateStore signs them under load, through an EventSigner (up to 64 to one signature over a Merkle root, each with its inclusion proof), and stored as the canonical bytes signing made; the rebuild's checker keeps the batches it verified (VerifiedBatches), so each batch's signature is verified once and its other events by their leaf against nodes already proven.",
        "CPU µs per event = CPU time of this process and of the nats-server during the read, divided by events read.",
        `References (best of their rounds, not judged): the raw consumer by callback read ${rate(cb)} events/s; against it the checked rebuild's best round is ${fmtRatio(cb.seconds / u.seconds)}, and the rebuild through the ordered consumer without checks ${fmtRatio(cb.seconds / bare.seconds)}. ` +
          "The target is judged against the iterator, the nats.js mode readEventMessages reads through.",
      ],
      seconds: (now() - started) / 1000,
    };
  } finally {
    await nc.close();
    await nats.stop();
  }
}

/**
 * checkEvent's cost per event on one thread and its parts (JSON.parse, the schemas compiled and not,
 * the batch proof and event hash), against decodeEvent's; batch-signed and singly signed.
 */
async function checkCosts(batched: NewEvent[], w: ReturnType<typeof newWriter>) {
  const trust = { trusts: () => true };
  const check = (e: NewEvent, i: number, batches: VerifiedBatches) =>
    checkEvent(i + 2, e.subject, e.bytes, trust, null, null, batches);
  let batches = new VerifiedBatches();
  const utf8 = new TextDecoder();
  const json = microUs(batched, (e) => JSON.parse(utf8.decode(e.bytes)));
  const parsed = batched.map((e) => JSON.parse(utf8.decode(e.bytes)) as EventEnvelope);
  const zod = microUs(parsed, (j) => {
    if (!EventEnvelope.safeParse(j).success || !eventTypeInfo(j.type)!.schema.safeParse(j.data).success)
      throw new Error("a bench event failed its schemas");
  });
  const compiled = microUs(parsed, (j) => {
    if (!compiledEventEnvelope().safeParse(j).success || !compiledEventData(j.type)!.safeParse(j.data).success)
      throw new Error("a bench event failed its compiled schemas");
  });
  const hash = microUs(parsed, (e, i) => {
    if (i === 0) batches = new VerifiedBatches();
    if (verifiedEventHash(e, batches) === null) throw new Error("a bench event failed its signature");
  });
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
  return { events: batched.length, json, zod, compiled, hash, decode, batched: batchedUs, single };
}

function draftOf(e: NewEvent) {
  const { v: _v, signer: _s, sig: _sig, batch: _b, ...draft } = e.env;
  return draft;
}
