// Issue 21, item 4: checkpoints kept off the box, against a real membershipd and its own secured
// nats-server. An attacker with root on the server (the account signing key and membershipd's
// writer key from the data dir) rebuilds the event stream without one event, with one changed, with
// two swapped, or cut short, re-signing every event so that each signature and hash chain verifies:
// plain `audit verify` passes, `audit verify --checkpoint` fails with one readable finding.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createUser } from "@nats-io/nkeys";
import { jetstream, jetstreamManager, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { EventEnvelope } from "../schemas/mod.ts";
import { EVENTS_STREAM, OperatorAuth, connectNats, credsFor, streamRead } from "../services/bus/mod.ts";
import { eventSubject, inboxPrefix, signEventBatch, type EventDraft, type Signer } from "../services/core/mod.ts";
import { serviceSigner } from "../services/membershipd/identities.ts";
import { clientFor, runCli, tempDir, type CliResult, type MembershipdHandle } from "./harness.ts";
import { cleanupMembershipd, getJson, startFreshMembershipd, waitUntil } from "./process-tools.ts";

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

interface Stored {
  seq: number;
  subject: string;
  event: EventEnvelope;
}

/** A NATS user of the attacker's own, minted with the account signing key found in DATA_DIR/auth/. */
async function attackerConnection(md: MembershipdHandle): Promise<NatsConnection> {
  const auth = new OperatorAuth(join(md.dataDir, "auth"));
  const kp = createUser();
  const key = kp.getPublicKey();
  const all = { allow: [">"], deny: [] };
  const jwt = await auth.userJwt({ name: "mallory", key, permissions: { pub: all, sub: all } });
  return await connectNats({
    servers: md.natsUrl,
    name: "mallory",
    caFile: join(md.dataDir, "tls", "ca.pem"),
    creds: credsFor(jwt, kp.getSeed()),
    inboxPrefix: inboxPrefix(key),
  });
}

async function readAll(jsm: JetStreamManager): Promise<Stored[]> {
  const out: Stored[] = [];
  for await (const m of streamRead(jsm, EVENTS_STREAM)) out.push({ seq: m.seq, subject: m.subject, event: m.json() });
  return out;
}

/**
 * The stream deleted and made again with the same configuration, holding `events` in this order,
 * each re-signed with the writer key and re-chained onto its aggregate's new previous event: what
 * the attacker needs for every signature and chain to verify.
 */
async function rebuild(nc: NatsConnection, writer: Signer, events: EventEnvelope[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const config: StreamConfig = (await jsm.streams.info(EVENTS_STREAM)).config;
  await jsm.streams.delete(EVENTS_STREAM);
  await jsm.streams.add(config);
  const heads = new Map<string, string>();
  const js = jetstream(nc);
  const acks: Promise<unknown>[] = [];
  for (const e of events) {
    const key = `${e.kind}.${e.aggregate}`;
    const { id, type, kind, aggregate, ts, actor, causation, correlation, data } = e;
    const draft: EventDraft = {
      id,
      type,
      kind,
      aggregate,
      ts,
      actor,
      causation,
      correlation,
      data,
      prev: heads.get(key) ?? null,
    };
    const [signed] = signEventBatch([draft], writer);
    heads.set(key, signed!.hash);
    acks.push(js.publish(`unibus.evt.${e.kind}.${subjectToken(e)}`, signed!.bytes));
  }
  await Promise.all(acks);
}

/** The blinded aggregate token of an event's subject, as the honest stream stored it. */
let tokens = new Map<string, string>();
const subjectToken = (e: EventEnvelope) => tokens.get(`${e.kind}.${e.aggregate}`)!;

describe("audit checkpoints against a rebuilt stream", { timeout: 300_000 }, () => {
  let md: MembershipdHandle | undefined;
  let mallory: NatsConnection | undefined;
  let honest: Stored[] = [];
  const dir = tempDir("unibus-cp-");
  const cp = join(dir, "cp.json");
  const cli = (args: string[]) => runCli(args, { dataDir: md!.dataDir });
  const verify = async (...extra: string[]) => {
    const r = await cli(["--json", "audit", "verify", ...extra]);
    return { r, report: JSON.parse(r.stdout || "{}") };
  };

  before(async () => {
    md = await startFreshMembershipd();
    ok(await cli(["user", "add", "alice", "--role", "admin"]), "user add alice");
    ok(await cli(["user", "add", "bob", "--role", "monitor"]), "user add bob");
    ok(await cli(["room", "create", "ops", "--subject", "Operations"]), "room create");
    ok(await cli(["member", "add", "ops", "alice"]), "member add");
    ok(await cli(["user", "revoke", "bob", "--reason", "left"]), "user revoke bob");
  });

  after(async () => {
    await mallory?.close().catch(() => {});
    await cleanupMembershipd(md);
  });

  test("checkpoint, then verify --checkpoint passes; --out never overwrites", async () => {
    const made = ok(await cli(["audit", "checkpoint", "--out", cp]), "audit checkpoint");
    assert.match(
      made.stdout,
      /^checkpoint of UNIBUS_EVENTS at seq \d+ \(\d+ aggregates, 1 writer key\(s\)\), signed by U[A-Z2-7]{55}; written to /,
    );
    assert.equal(statSync(cp).mode & 0o777, 0o644);
    const line = readFileSync(cp, "utf8");
    assert.ok(line.endsWith("\n") && line.trim().split("\n").length === 1 && line.length < 600, line);
    const again = await cli(["audit", "checkpoint", "--out", cp]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(
      again.stderr,
      /^unibus: .*cp\.json already exists; a checkpoint is never written over another .*\[E_CHECKPOINT\]\n$/,
    );
    assert.equal(readFileSync(cp, "utf8"), line);

    const { r, report } = await verify("--checkpoint", cp);
    ok(r, "verify --checkpoint");
    assert.equal(report.checkpoint.extended, true);
    assert.deepEqual(report.findings, []);
    const human = ok(await cli(["audit", "verify", "--checkpoint", cp]), "verify --checkpoint (human)");
    assert.match(
      human.stdout,
      /the stream extends the checkpoint at seq \d+ .*; every signature and hash chain is intact\n$/,
    );
  });

  test("--since-checkpoint verifies only the later events, chained from the checkpoint's heads", async () => {
    ok(await cli(["member", "add", "ops", "bob"]), "member add bob after the checkpoint");
    ok(await cli(["room", "archive", "ops"]), "room archive after the checkpoint");
    const at = JSON.parse(readFileSync(cp, "utf8")).last_seq;
    const { r, report } = await verify("--checkpoint", cp, "--since-checkpoint");
    ok(r, "verify --since-checkpoint");
    assert.equal(report.from_seq, at + 1);
    assert.equal(report.events, report.at_seq - at);
    assert.ok(report.events >= 2 && report.events < at, JSON.stringify(report));
    assert.deepEqual(report.findings, []);
    const mallory0 = await attackerConnection(md!);
    honest = await readAll(await jetstreamManager(mallory0));
    await mallory0.close();
    tokens = new Map(
      honest.map((s) => [`${s.event.kind}.${s.event.aggregate}`, s.subject.split(".").slice(3).join(".")]),
    );
  });

  const writer = () => serviceSigner(md!.dataDir);
  const at = () => JSON.parse(readFileSync(cp, "utf8")).last_seq as number;
  const events = () => honest.map((s) => s.event);

  /** Rebuilt as `edit` says; plain verify passes, --checkpoint fails with exactly one finding of `problem`. */
  async function attack(what: string, edit: (e: EventEnvelope[]) => EventEnvelope[], problem: string) {
    mallory ??= await attackerConnection(md!);
    await rebuild(mallory, writer(), edit(events()));
    const plain = await verify();
    assert.equal(plain.r.code, 0, `${what}: plain verify\n${plain.r.stdout}\n${plain.r.stderr}`);
    assert.deepEqual(plain.report.findings, [], what);
    const { r, report } = await verify("--checkpoint", cp);
    assert.equal(r.code, 1, `${what}: verify --checkpoint\n${r.stdout}\n${r.stderr}`);
    assert.equal(report.checkpoint.extended, false);
    assert.deepEqual(
      report.findings.map((f: { problem: string }) => f.problem),
      [problem],
      `${what}: ${r.stdout}`,
    );
    const human = await cli(["audit", "verify", "--checkpoint", cp]);
    assert.equal(human.code, 1);
    assert.match(human.stdout, /the stream does NOT extend the checkpoint at seq \d+/);
    return report.findings[0].detail as string;
  }

  test("an event removed (bob's UserRevoked), all re-signed: only the checkpoint catches it", async (t) => {
    const revoked = honest.find((s) => s.event.type === "UserRevoked")!;
    assert.ok(revoked.seq <= at());
    const detail = await attack("removed", (e) => e.filter((x) => x.id !== revoked.event.id), "checkpoint_diverged");
    t.diagnostic(detail);
    assert.match(
      detail,
      /no longer hash to the checkpoint .*changed, removed, inserted or reordered \(the aggregates' last events differ too\)/,
    );
    // The daily check catches it too: bob's head is no longer what the checkpoint says.
    const since = await verify("--checkpoint", cp, "--since-checkpoint");
    assert.equal(since.r.code, 1, since.r.stdout);
    assert.deepEqual(
      since.report.findings.map((f: { problem: string }) => f.problem),
      ["checkpoint_heads"],
    );
  });

  test("an event changed (bob created as admin), all re-signed: only the checkpoint catches it", async (t) => {
    const detail = await attack(
      "changed",
      (e) =>
        e.map((x) =>
          x.type === "UserCreated" && x.aggregate === "bob" ? { ...x, data: { ...x.data, role: "admin" } } : x,
        ),
      "checkpoint_diverged",
    );
    t.diagnostic(detail);
  });

  test("two events of different aggregates swapped: only the checkpoint catches it", async (t) => {
    const detail = await attack(
      "reordered",
      (e) => {
        // Not the genesis event: it must stay first for trust to begin.
        const i = e.findIndex((x, j) => j > 1 && x.kind !== e[j - 1]!.kind);
        return [...e.slice(0, i - 1), e[i]!, e[i - 1]!, ...e.slice(i + 1)];
      },
      "checkpoint_diverged",
    );
    t.diagnostic(detail);
    assert.match(detail, /every aggregate's last event is the same, so events were reordered or re-encoded/);
  });

  test("the stream cut before the checkpoint's last event", async (t) => {
    const detail = await attack("cut", (e) => e.slice(0, at() - 2), "checkpoint_cut");
    t.diagnostic(detail);
    assert.match(
      detail,
      new RegExp(
        `^the stream ends at seq ${at() - 2}, before the checkpoint .*: events ${at() - 1}\\.\\.${at()} were cut$`,
      ),
    );
  });

  test("a checkpoint file that is no checkpoint, or edited: one readable sentence", async () => {
    const { writeFileSync } = await import("node:fs");
    const bad = join(dir, "bad.json");
    writeFileSync(bad, "hello\n");
    const r = await cli(["audit", "verify", "--checkpoint", bad]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^unibus: .*bad\.json is not JSON: .* \[E_CHECKPOINT\]\n$/);
    const edited = join(dir, "edited.json");
    const c = JSON.parse(readFileSync(cp, "utf8"));
    writeFileSync(edited, JSON.stringify({ ...c, last_seq: c.last_seq - 1 }));
    const v = await verify("--checkpoint", edited);
    assert.equal(v.r.code, 1);
    assert.ok(
      v.report.findings.some((f: { problem: string }) => f.problem === "checkpoint_signature"),
      v.r.stdout,
    );
  });
});

describe("membershipd's checkpoint timer", { timeout: 120_000 }, () => {
  let md: MembershipdHandle | undefined;
  const dir = tempDir("unibus-cps-");
  const cli = (args: string[]) => runCli(args, { dataDir: md!.dataDir });

  before(async () => {
    md = await startFreshMembershipd({ args: ["--checkpoint-interval", "2s"] });
  });
  after(() => cleanupMembershipd(md));

  test("a monitor identity receives each signed checkpoint and keeps it; it verifies against the stream", async () => {
    ok(await cli(["user", "add", "mon", "--role", "monitor"]), "user add mon");
    const creds = join(md!.dataDir, "users", "mon.creds");
    const follow = ok(
      await cli(["--creds", creds, "audit", "checkpoints", "--count", "1", "--dir", dir]),
      "audit checkpoints",
    );
    const [head, line] = follow.stdout.trim().split("\n");
    assert.match(head!, /^seq \d+ \S+ signed by U[A-Z2-7]{55} -> .*UNIBUS_EVENTS-\d+\.json$/);
    const c = JSON.parse(line!);
    assert.equal(c.signer, serviceSigner(md!.dataDir).publicKey);
    assert.match(md!.output(), /membershipd: checkpoint \(\d+ new events, \d+ ms\): \{"aggregates":/);
    const file = join(dir, `UNIBUS_EVENTS-${c.last_seq}.json`);
    assert.equal(readFileSync(file, "utf8"), `${line}\n`);
    // Signed by membershipd's writer key (the genesis writer): trusted without --trust.
    const v = ok(await cli(["audit", "verify", "--checkpoint", file]), "verify --checkpoint");
    assert.match(v.stdout, /the stream extends the checkpoint at seq \d+ .*signed by U/);
  });
});

/**
 * Events before the checkpoint (CP_EVENTS), over how many aggregates (CP_AGGREGATES), and after it.
 * 5,000 keep the full verify well above the CLI's own start; CP_EVENTS=100000 shows the gap at scale.
 */
const BEFORE = Number(process.env.CP_EVENTS ?? 5_000);
const AGGREGATES = Number(process.env.CP_AGGREGATES ?? 200);
const AFTER = 50;

describe("--since-checkpoint costs the events after the checkpoint", { timeout: 600_000 }, () => {
  let md: MembershipdHandle | undefined;
  let service: Awaited<ReturnType<typeof clientFor>> | undefined;
  const dir = tempDir("unibus-cpm-");
  const cli = (args: string[]) => runCli(args, { dataDir: md!.dataDir });
  const heads = new Map<string, string>();
  let n = 0;

  /** `count` valid events, signed with membershipd's writer key, spread over AGGREGATES rooms, chained. */
  async function append(count: number): Promise<void> {
    const writer = serviceSigner(md!.dataDir);
    const acks: Promise<unknown>[] = [];
    for (let i = 0; i < count; i++, n++) {
      const room = `load-${n % AGGREGATES}`;
      const draft: EventDraft = {
        id: `load-${n}:0`,
        type: "RoomCreated",
        kind: "room",
        aggregate: room,
        ts: new Date().toISOString(),
        actor: { id: "admin", key: writer.publicKey },
        causation: null,
        correlation: null,
        prev: heads.get(room) ?? null,
        data: { room, subject: `load ${n}`, created_by: "admin" },
      };
      const [e] = signEventBatch([draft], writer);
      heads.set(room, e!.hash);
      acks.push(service!.js.publish(eventSubject("room", room), e!.bytes));
      if (acks.length >= 1000) await Promise.all(acks.splice(0));
    }
    await Promise.all(acks);
  }

  /** Timed with membershipd's projector idle: it applies what append() wrote on the same two cores. */
  const settled = () =>
    waitUntil(
      "the projector to catch up",
      async () => (await getJson(`${md!.httpUrl}/healthz`)).body?.projections?.lag === 0,
      300_000,
      250,
    );

  const timed = async (args: string[]) => {
    const started = performance.now();
    const r = await cli(args);
    return { r, s: (performance.now() - started) / 1000, report: JSON.parse(r.stdout || "{}") };
  };

  before(async () => {
    md = await startFreshMembershipd();
    service = await clientFor(md);
  });
  after(async () => {
    await service?.nc.close();
    await cleanupMembershipd(md);
  });

  test(`${BEFORE} events before over ${AGGREGATES} aggregates, ${AFTER} after`, async (t) => {
    await append(BEFORE);
    await settled();
    const cp = join(dir, "cp.json");
    const made = await timed(["--json", "audit", "checkpoint", "--out", cp]);
    ok(made.r, "audit checkpoint");
    await append(AFTER);
    await settled();
    const plain = await timed(["--json", "audit", "verify"]);
    ok(plain.r, "plain verify");
    // Alternating rounds: the machine's other load moves every figure.
    const fulls: Awaited<ReturnType<typeof timed>>[] = [];
    const sinces: typeof fulls = [];
    for (let round = 0; round < 3; round++) {
      fulls.push(await timed(["--json", "audit", "verify", "--checkpoint", cp]));
      sinces.push(await timed(["--json", "audit", "verify", "--checkpoint", cp, "--since-checkpoint"]));
    }
    for (const x of [...fulls, ...sinces]) {
      ok(x.r, "verify --checkpoint");
      assert.deepEqual(x.report.findings, []);
    }
    const since = sinces[0]!.report;
    assert.equal(since.events, AFTER);
    assert.equal(since.heads_read, made.report.aggregates - Math.min(AFTER, AGGREGATES));
    assert.equal(fulls[0]!.report.events, fulls[0]!.report.at_seq);
    const fmt = (xs: typeof fulls) => xs.map((x) => `${x.report.seconds.toFixed(2)}/${x.s.toFixed(2)}`).join(", ");
    t.diagnostic(
      `checkpoint ${made.s.toFixed(2)} s; plain verify ${plain.s.toFixed(2)} s; in-process/wall s per round: ` +
        `--checkpoint ${fmt(fulls)} (${fulls[0]!.report.events} events); ` +
        `--since-checkpoint ${fmt(sinces)} (${since.events} events, ${since.heads_read} heads read of ${made.report.aggregates})`,
    );
    const best = (xs: typeof fulls) => Math.min(...xs.map((x) => x.report.seconds));
    assert.ok(best(sinces) < best(fulls), `since ${best(sinces)} s, full ${best(fulls)} s`);
  });
});
