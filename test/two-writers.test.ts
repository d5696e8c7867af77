// Two membershipds of one cluster write the same aggregate (the same service key, one stream):
// the one whose cache is several events behind reads them, quarantines nothing and chains on.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  fleetAggregate,
  GENESIS_ID,
  isDomainError,
  newUserSeed,
  signerFromSeed,
  systemAggregate,
} from "../services/core/mod.ts";
import { clientFor, startNats, type NatsHandle } from "./harness.ts";
import { AggregateStore } from "../services/bus/aggregate-store.ts";
import { jetStreamEventLog } from "../services/bus/event-log.ts";
import { ensureEventStream } from "../services/bus/event-store.ts";
import { QuarantineLog } from "../services/bus/quarantine.ts";

let nats: NatsHandle;
let c: Awaited<ReturnType<typeof clientFor>>;

before(async () => {
  nats = await startNats();
  c = await clientFor(nats.url);
  await ensureEventStream(c.jsm, 1);
});

after(async () => {
  await c?.nc.close();
  await nats?.stop();
});

test("a store whose cache is several events behind another writer's reads them: nothing quarantined, its event chains on", async () => {
  const service = signerFromSeed(newUserSeed());
  const actor = { id: "membershipd", key: service.publicKey };
  let n = 0;
  const meta = () => ({ actor, commandId: `cmd-${++n}` });
  const [qa, qb] = [new QuarantineLog(), new QuarantineLog()];
  const a = new AggregateStore(jetStreamEventLog(c.nc, c.jsm), service, { quarantine: qa });
  const b = new AggregateStore(jetStreamEventLog(c.nc, c.jsm), service, { quarantine: qb });
  const genesis = await a.execute(
    systemAggregate,
    GENESIS_ID,
    { type: "InitializeSystem", cluster: "test", key: service.publicKey },
    meta(),
  );
  assert.ok(!isDomainError(genesis));
  const invite = () => ({
    type: "IssueInvite" as const,
    hash: randomBytes(32).toString("hex"),
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    uses: 1,
    note: "",
    bootstrapKey: signerFromSeed(newUserSeed()).publicKey,
  });
  assert.ok(!isDomainError(await a.execute(fleetAggregate, "main", invite(), meta())));
  // The other writer appends two events: a's cache is now two behind.
  for (let i = 0; i < 2; i++) assert.ok(!isDomainError(await b.execute(fleetAggregate, "main", invite(), meta())));
  const r = await a.execute(fleetAggregate, "main", invite(), meta());
  assert.ok(!isDomainError(r), isDomainError(r) ? r.message : "");
  const loaded = await b.load(fleetAggregate, "main");
  assert.equal(loaded.state.invites.size, 4);
  assert.deepEqual(qa.list(), [], "a quarantined nothing");
  assert.deepEqual(qb.list(), [], "b quarantined nothing");
});
