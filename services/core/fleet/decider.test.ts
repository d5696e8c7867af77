// The fleet aggregate's rules (invites, names, keys, addresses): given its events, when a command,
// then events or a refusal; the state the events fold to where a rule lives in evolve.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createCurve } from "@nats-io/nkeys";
import { eventTypeInfo, type FleetEvent } from "../../../schemas/mod.ts";
import { newUserSeed, sha256Hex, signerFromSeed } from "../signing/crypto.ts";
import { fold } from "../decider.ts";
import { deciderSpec, eventsOf } from "../decider-spec.ts";
import { isDomainError, type DomainError } from "../errors.ts";
import { fleetDecider, findInvite, type FleetCommand, type FleetState } from "./decider.ts";

const NOW = "2030-01-01T00:00:00.000Z";
const LATER = "2030-01-02T00:00:00.000Z";
const newKey = () => signerFromSeed(newUserSeed()).publicKey;
const kex = createCurve().getPublicKey();
const bootstrapKey = newKey();
const spec = deciderSpec(fleetDecider, "fleet");

/** The history the commands make, each decided on what the ones before left. */
function history(...commands: FleetCommand[]): FleetEvent[] {
  const events = eventsOf(fleetDecider, ...commands);
  for (const e of events)
    assert.ok(eventTypeInfo(e.type)!.schema.safeParse(e.data).success, `${e.type} does not match its schema`);
  return events;
}
const stateAfter = (...commands: FleetCommand[]): FleetState => fold(fleetDecider, history(...commands));

function error(r: unknown, code: DomainError["code"]): DomainError {
  assert.ok(isDomainError(r), `expected ${code}, got ${JSON.stringify(r)}`);
  assert.equal(r.code, code, r.message);
  assert.ok(r.message.length > 0);
  return r;
}

const hashOf = (n: number) => sha256Hex(`secret-${n}`);
const issue = (
  n: number,
  o: Partial<{ uses: number; expiresAt: string; address: string }> = {},
): Extract<FleetCommand, { type: "IssueInvite" }> => ({
  type: "IssueInvite",
  hash: hashOf(n),
  expiresAt: o.expiresAt ?? LATER,
  uses: o.uses ?? 1,
  note: `n${n}`,
  bootstrapKey,
  ...(o.address === undefined ? {} : { address: o.address }),
});

function enrollCmd(
  node: string,
  o: Partial<{ invite: number; signKey: string; now: string; cidr: string }> = {},
): Extract<FleetCommand, { type: "EnrollNode" }> {
  return {
    type: "EnrollNode",
    node,
    signKey: o.signKey ?? newKey(),
    kexKey: kex,
    labels: {},
    inviteHash: hashOf(o.invite ?? 1),
    flow: "join",
    now: o.now ?? NOW,
    cidr: o.cidr ?? "10.0.0.0/24",
  };
}

const revokeInvite = (prefix: string): FleetCommand => ({ type: "RevokeInvite", hashPrefix: prefix });
const addressOf = (s: FleetState, node: string) => s.nodes.get(node)!.address;

describe("fleet decider: invites", () => {
  test("IssueInvite records the hash, never a secret, and a second one with the same hash is a conflict", () => {
    spec
      .given()
      .when(issue(1))
      .thenEvents([
        {
          type: "InviteIssued",
          data: { hash: hashOf(1), expires_at: LATER, uses: 1, note: "n1", bootstrap_key: bootstrapKey },
        },
      ]);
    spec
      .given(...history(issue(1)))
      .when(issue(1))
      .thenError("E_CONFLICT");
  });

  test("findInvite: at least 8 hex digits, unique prefix, unknown prefix", () => {
    const two = [
      { ...issue(1), hash: "abcdef01" + "0".repeat(56) },
      { ...issue(2), hash: "abcdef02" + "0".repeat(56) },
    ];
    const s = stateAfter(...two);
    error(findInvite(s, "abcdef0"), "E_BAD_REQUEST");
    error(findInvite(s, "ABCDEF01"), "E_BAD_REQUEST");
    error(findInvite(s, "abcdef0*"), "E_BAD_REQUEST");
    assert.match(error(findInvite(s, "abcdef0" + "0"), "E_INVITE_NOT_FOUND").message, /abcdef00/);
    const ambiguous = stateAfter(...two, { ...issue(3), hash: "abcdef01" + "1".repeat(56) });
    assert.match(error(findInvite(ambiguous, "abcdef01"), "E_BAD_REQUEST").message, /2 invites/);
    assert.equal((findInvite(ambiguous, "abcdef010") as { hash: string }).hash, "abcdef01" + "0".repeat(56));
  });

  test("RevokeInvite by prefix; revoking twice is refused", () => {
    spec
      .given(...history(issue(1)))
      .when(revokeInvite(hashOf(1).slice(0, 8)))
      .thenEvents([{ type: "InviteRevoked", data: { hash: hashOf(1) } }]);
    const revoked = history(issue(1), revokeInvite(hashOf(1).slice(0, 8)));
    assert.equal(fold(fleetDecider, revoked).invites.get(hashOf(1))!.revoked, true);
    spec
      .given(...revoked)
      .when(revokeInvite(hashOf(1)))
      .thenError("E_INVITE_REVOKED");
    spec
      .given(...revoked)
      .when(revokeInvite(hashOf(9).slice(0, 10)))
      .thenError("E_INVITE_NOT_FOUND");
  });
});

describe("fleet decider: enrollment", () => {
  test("a valid invite enrolls a node: keys, the lowest address, one use consumed", () => {
    const c = enrollCmd("n1");
    const enrolled: FleetEvent = {
      type: "NodeEnrolled",
      data: {
        node: "n1",
        sign_key: c.signKey,
        kex_key: kex,
        address: "10.0.0.1",
        labels: {},
        invite: hashOf(1),
        flow: "join",
      },
    };
    const given = history(issue(1, { uses: 2 }));
    spec
      .given(...given)
      .when(c)
      .thenEvents([enrolled]);
    const s = fold(fleetDecider, [...given, enrolled]);
    assert.equal(s.invites.get(hashOf(1))!.usesLeft, 1);
    assert.deepEqual([...s.addresses], ["10.0.0.1"]);
  });

  test("unknown, revoked, expired and used invites are refused, each with its own code", () => {
    const invited = history(issue(1));
    spec
      .given(...invited)
      .when(enrollCmd("n1", { invite: 7 }))
      .thenError("E_INVITE_NOT_FOUND");
    spec
      .given(...history(issue(1), revokeInvite(hashOf(1))))
      .when(enrollCmd("n1"))
      .thenError("E_INVITE_REVOKED");
    spec
      .given(...invited)
      .when(enrollCmd("n1", { now: LATER }))
      .thenError("E_INVITE_EXPIRED");
    spec
      .given(...invited)
      .when(enrollCmd("n1", { now: "2030-01-03T00:00:00.000Z" }))
      .thenError("E_INVITE_EXPIRED");
    spec
      .given(...history(issue(1), enrollCmd("n1")))
      .when(enrollCmd("n2"))
      .thenError("E_INVITE_USED");
  });

  test("a revoked invite is refused even when it has also expired or run out: revocation is the clearest reason", () => {
    spec
      .given(...history(issue(1), enrollCmd("n1"), revokeInvite(hashOf(1))))
      .when(enrollCmd("n2", { now: LATER }))
      .thenError("E_INVITE_REVOKED");
  });

  test("an active name is taken (E_NODE_EXISTS); a key enrolled once is never enrolled again (E_KEY_IN_USE)", () => {
    const first = enrollCmd("n1");
    const enrolled = history(issue(1, { uses: 5 }), first);
    spec
      .given(...enrolled)
      .when(enrollCmd("n1"))
      .thenError("E_NODE_EXISTS", { node: "n1" });
    spec
      .given(...enrolled)
      .when(enrollCmd("n2", { signKey: first.signKey }))
      .thenError("E_KEY_IN_USE");
    const left = history(issue(1, { uses: 5 }), first, { type: "LeaveNode", node: "n1" });
    spec
      .given(...left)
      .when(enrollCmd("n1", { signKey: first.signKey }))
      .thenError("E_KEY_IN_USE");
    const again = fleetDecider.decide(enrollCmd("n1"), fold(fleetDecider, left));
    assert.ok(Array.isArray(again) && again.length === 1, "a left node's name is free for a new key");
  });

  test("a WireGuard key and endpoint are recorded; a live node's WireGuard key is refused (E_WG_KEY_IN_USE), a departed one's is free", () => {
    const wgKey = Buffer.alloc(32, 1).toString("base64");
    const first = { ...enrollCmd("n1"), wgKey, wgEndpoint: "203.0.113.5:51820" };
    const enrolled = history(issue(1, { uses: 5 }), first);
    const data = enrolled[1]!.data as { wg_key?: string; wg_endpoint?: string };
    assert.deepEqual([data.wg_key, data.wg_endpoint], [wgKey, "203.0.113.5:51820"]);
    const n1 = fold(fleetDecider, enrolled).nodes.get("n1")!;
    assert.deepEqual([n1.wgKey, n1.wgEndpoint], [wgKey, "203.0.113.5:51820"]);
    const refused = error(
      fleetDecider.decide({ ...enrollCmd("n2"), wgKey }, fold(fleetDecider, enrolled)),
      "E_WG_KEY_IN_USE",
    );
    assert.equal(refused.message, "that WireGuard key is already node n1's; generate a key pair of your own");
    spec
      .given(...enrolled)
      .when({ ...enrollCmd("n2"), wgKey })
      .thenError("E_WG_KEY_IN_USE", { node: "n1" });
    for (const gone of [
      { type: "LeaveNode", node: "n1" } as const,
      { type: "RevokeNode", node: "n1", reason: "x" } as const,
    ]) {
      const after = fold(fleetDecider, history(issue(1, { uses: 5 }), first, gone));
      assert.equal(after.wgKeys.size, 0);
      const again = fleetDecider.decide({ ...enrollCmd("n2"), wgKey }, after);
      assert.ok(Array.isArray(again) && again.length === 1, `${gone.type}: the key is free again`);
    }
    // Without a key (an older agent) the event has no wg fields and the node none.
    const plain = history(issue(1), enrollCmd("n3"));
    assert.ok(!("wg_key" in plain[1]!.data) && !("wg_endpoint" in plain[1]!.data));
    assert.equal(fold(fleetDecider, plain).nodes.get("n3")!.wgKey, null);
  });

  test("a node changes its WireGuard key or endpoint: recorded, its old key freed; another's key refused; the same again is nothing", () => {
    const [k1, k2, k3] = [1, 2, 3].map((b) => Buffer.alloc(32, b).toString("base64"));
    const enrolled = history(
      issue(1, { uses: 5 }),
      { ...enrollCmd("n1"), wgKey: k1, wgEndpoint: "203.0.113.5:51820" },
      { ...enrollCmd("n2"), wgKey: k2 },
    );
    const change = (wgKey: string, wgEndpoint: string | null): FleetCommand => ({
      type: "ChangeNodeWg",
      node: "n1",
      wgKey,
      wgEndpoint,
    });
    spec
      .given(...enrolled)
      .when(change(k3, null))
      .thenEvents([{ type: "NodeWgChanged", data: { node: "n1", wg_key: k3, wg_endpoint: null } }]);
    spec
      .given(...enrolled)
      .when(change(k2, null))
      .thenError("E_WG_KEY_IN_USE", { node: "n2" });
    spec
      .given(...enrolled)
      .when(change(k1, "203.0.113.5:51820"))
      .thenNothing();
    const changed = history(
      issue(1, { uses: 5 }),
      { ...enrollCmd("n1"), wgKey: k1, wgEndpoint: "203.0.113.5:51820" },
      { ...enrollCmd("n2"), wgKey: k2 },
      change(k3, "203.0.113.9:51999"),
    );
    const s = fold(fleetDecider, changed);
    assert.deepEqual([s.nodes.get("n1")!.wgKey, s.nodes.get("n1")!.wgEndpoint], [k3, "203.0.113.9:51999"]);
    assert.equal(s.wgKeys.get(k3), "n1");
    assert.equal(s.wgKeys.has(k1), false, "the old key is free");
    const gone = fold(
      fleetDecider,
      history(issue(1), { ...enrollCmd("n1"), wgKey: k1 }, { type: "LeaveNode", node: "n1" }),
    );
    error(fleetDecider.decide(change(k3, null), gone), "E_NODE_NOT_FOUND");
  });

  test("the invite's own bootstrap key cannot become a node key (everyone holding the token has its seed)", () => {
    spec
      .given(...history(issue(1)))
      .when(enrollCmd("n1", { signKey: bootstrapKey }))
      .thenError("E_KEY_IN_USE");
  });

  test("addresses are never handed out twice and are reused only after NodeLeft or NodeRevoked", () => {
    const three: FleetCommand[] = [issue(1, { uses: 10 }), enrollCmd("a"), enrollCmd("b"), enrollCmd("c")];
    const s1 = stateAfter(...three);
    assert.deepEqual(
      ["a", "b", "c"].map((n) => addressOf(s1, n)),
      ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
    );
    const gone: FleetCommand[] = [
      ...three,
      { type: "LeaveNode", node: "a" },
      { type: "RevokeNode", node: "b", reason: "stolen" },
    ];
    assert.deepEqual([...stateAfter(...gone).addresses], ["10.0.0.3"]);
    const s = stateAfter(...gone, enrollCmd("d"), enrollCmd("e"), enrollCmd("f"));
    assert.deepEqual(
      ["d", "e", "f"].map((n) => addressOf(s, n)),
      ["10.0.0.1", "10.0.0.2", "10.0.0.4"],
    );
    const active = [...s.nodes.values()].filter((n) => n.status === "active").map((n) => n.address);
    assert.equal(new Set(active).size, active.length);
  });

  test("an invite that pins an address: its node gets it, the others still get the lowest free ones; held, outside or multi-use is refused", () => {
    const pinned = [issue(1, { uses: 10 }), issue(2, { address: "10.0.0.5" })];
    const s = stateAfter(...pinned, enrollCmd("cp", { invite: 2 }), enrollCmd("a"), enrollCmd("b"));
    assert.deepEqual(
      ["cp", "a", "b"].map((n) => addressOf(s, n)),
      ["10.0.0.5", "10.0.0.1", "10.0.0.2"],
    );
    const more = stateAfter(
      ...pinned,
      enrollCmd("cp", { invite: 2 }),
      ...["a", "b", "c", "d", "e"].map((n) => enrollCmd(n)),
    );
    assert.deepEqual(
      ["d", "e"].map((n) => addressOf(more, n)),
      ["10.0.0.4", "10.0.0.6"],
      "allocation steps over the pinned address",
    );
    const held = history(...pinned, enrollCmd("cp", { invite: 2 }));
    spec
      .given(...held)
      .when(issue(3, { address: "10.0.0.5" }))
      .thenError("E_ADDRESS_IN_USE");
    const taken = history(issue(1, { uses: 10 }), issue(2, { address: "10.0.0.1" }), enrollCmd("a"));
    spec
      .given(...taken)
      .when(enrollCmd("cp", { invite: 2 }))
      .thenError("E_ADDRESS_IN_USE");
    spec
      .given(...history(issue(2, { address: "10.0.1.5" })))
      .when(enrollCmd("cp", { invite: 2 }))
      .thenError("E_BAD_REQUEST");
    spec
      .given()
      .when(issue(2, { address: "10.0.0.5", uses: 2 }))
      .thenError("E_BAD_REQUEST");
    const gone = stateAfter(
      ...pinned,
      enrollCmd("cp", { invite: 2 }),
      { type: "LeaveNode", node: "cp" },
      enrollCmd("a"),
    );
    assert.equal(addressOf(gone, "a"), "10.0.0.1");
  });

  test("500 random enrollments and departures: each address is the lowest free one, as a scan of every address finds it", () => {
    // The state keeps a mark below which every address is held (evolve costs O(1), not a copy of
    // the fleet): the addresses it hands out must be exactly those of the plain scan.
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const cidr = "10.1.0.0/22";
    let state = fleetDecider.initialState();
    const apply = (c: FleetCommand) => {
      const r = fleetDecider.decide(c, state);
      assert.ok(!isDomainError(r), JSON.stringify(r));
      for (const e of r) state = fleetDecider.evolve(state, e);
      return r;
    };
    apply(issue(1, { uses: 10_000 }));
    const held = new Set<number>();
    let next = 0;
    for (let i = 0; i < 500; i++) {
      const active = [...state.nodes.values()].filter((n) => n.status === "active");
      if (active.length > 0 && rand() < 0.3) {
        const gone = active[Math.floor(rand() * active.length)]!;
        apply({ type: "LeaveNode", node: gone.node });
        held.delete(Number(gone.address.split(".").at(-1)) + 256 * Number(gone.address.split(".")[2]));
        continue;
      }
      let lowest = 1;
      while (held.has(lowest)) lowest++;
      const [e] = apply(enrollCmd(`n${next++}`, { cidr })) as FleetEvent[];
      const address = (e!.data as { address: string }).address;
      assert.equal(address, `10.1.${Math.floor(lowest / 256)}.${lowest % 256}`, `enrollment ${i}`);
      held.add(lowest);
    }
    assert.equal(state.addresses.size, held.size);
  });

  test("a full CIDR is E_NO_ADDRESS (a /30 has two host addresses); an invalid one is E_INTERNAL", () => {
    const full = history(
      issue(1, { uses: 10 }),
      enrollCmd("a", { cidr: "10.9.0.0/30" }),
      enrollCmd("b", { cidr: "10.9.0.0/30" }),
    );
    const s = fold(fleetDecider, full);
    assert.deepEqual([addressOf(s, "a"), addressOf(s, "b")], ["10.9.0.1", "10.9.0.2"]);
    const err = spec
      .given(...full)
      .when(enrollCmd("c", { cidr: "10.9.0.0/30" }))
      .thenError("E_NO_ADDRESS");
    assert.match(err.message, /10\.9\.0\.0\/30/);
    spec
      .given(...full)
      .when(enrollCmd("c", { cidr: "10.9.0.0/31" }))
      .thenError("E_INTERNAL");
    assert.equal(s.invites.get(hashOf(1))!.usesLeft, 8, "a refused enrollment uses nothing");
  });

  test("leaving or revoking a node that is not active is E_NODE_NOT_FOUND", () => {
    const left = history(issue(1), enrollCmd("n1"), { type: "LeaveNode", node: "n1" });
    spec
      .given(...left)
      .when({ type: "LeaveNode", node: "n1" })
      .thenError("E_NODE_NOT_FOUND");
    spec
      .given(...left)
      .when({ type: "RevokeNode", node: "n1", reason: "" })
      .thenError("E_NODE_NOT_FOUND");
    spec
      .given(...left)
      .when({ type: "RevokeNode", node: "ghost", reason: "" })
      .thenError("E_NODE_NOT_FOUND");
    assert.equal(fold(fleetDecider, left).nodes.get("n1")!.status, "left");
  });

  test("replaying the history rebuilds the same state", () => {
    const cmds: FleetCommand[] = [
      issue(1, { uses: 3 }),
      enrollCmd("a"),
      enrollCmd("b"),
      { type: "RevokeNode", node: "a", reason: "x" },
      enrollCmd("c"),
    ];
    let s = fleetDecider.initialState();
    for (const c of cmds) {
      const evs = fleetDecider.decide(c, s);
      assert.ok(Array.isArray(evs));
      s = evs.reduce((st, e) => fleetDecider.evolve(st, e), s);
    }
    assert.deepEqual(fold(fleetDecider, history(...cmds)), s);
    assert.equal(addressOf(s, "c"), "10.0.0.1");
  });
});
