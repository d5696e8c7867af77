// Invites and enrollment. A node joins by presenting an invite's secret and its public keys,
// signed with the key it claims (`unibus.enroll.join`, reachable with the invite's bootstrap
// credential), or waits with a code that an operator enrolls (`unibus.enroll.wait.*`).
// Either way the fleet aggregate records NodeEnrolled, the node's identity is issued, and the
// node gets a JWT for the key it generated itself: its seed never leaves it.
import { randomBytes } from "node:crypto";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  type Actor,
  INVITE_PREFIX,
  enrollWaitSubject,
  JoinRequest,
  WaitAnnouncement,
  type CommandEnvelope,
  type InviteToken,
  type NodeConfig,
  type WaitBundle,
} from "../../schemas/mod.ts";
import {
  canonicalJson,
  decodeSignature,
  domainError,
  sealConfig,
  fleetAggregate,
  FLEET_ID,
  identityAggregate,
  inCidr,
  isDomainError,
  newUserSeed,
  parseCidr,
  sha256Hex,
  signerFromSeed,
  verifySignature,
  type DomainError,
  type FleetCommand,
  type FleetState,
} from "../core/mod.ts";
import { credsFor, type AggregateStore } from "../bus/mod.ts";
import type { IdentityService } from "./identity-service.ts";
import { CLOCK_WINDOW_MS, errorReply } from "./command-pipeline.ts";
import { parseRequest } from "./request-json.ts";

export {
  ENROLL_JOIN_SUBJECT as JOIN_SUBJECT,
  ENROLL_WAIT_ANNOUNCE_SUBJECT as WAIT_ANNOUNCE_SUBJECT,
} from "../../schemas/mod.ts";
const FLEET = FLEET_ID;

export interface EnrollmentOptions {
  cluster: string;
  urls: string[];
  caFingerprint: string;
  cidr: string;
  /** The clock invites and joins are judged by (tests move it); Date.now by default. */
  now?: () => number;
}

interface Announcement {
  announcement: WaitAnnouncement;
  config?: { nonce: string; box: string };
}

export class EnrollmentService {
  constructor(
    private readonly o: EnrollmentOptions,
    private readonly aggregates: AggregateStore,
    private readonly identities: IdentityService,
    private readonly waiting: KV,
    private readonly nc: NatsConnection,
  ) {}

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /**
   * Fleet writes from this process go one at a time: they all hit one aggregate, and letting them
   * race only turns into expected-sequence retries. Other instances are still held off by OCC.
   */
  private fleetWrites: Promise<unknown> = Promise.resolve();

  private writeFleet(command: FleetCommand, meta: { actor: Actor; commandId: string }) {
    const run = this.fleetWrites.then(() => this.aggregates.execute(fleetAggregate, FLEET, command, meta));
    this.fleetWrites = run.catch(() => {});
    return run.then((r) => {
      if (!isDomainError(r) && !r.replayed && r.events.some(changesMesh))
        this.meshChanged(r.events.some((e) => e.type !== "NodeEnrolled"));
      return r;
    });
  }

  private meshChanged: (urgent: boolean) => void = () => {};

  /**
   * Called after each fleet write of this process that adds a WireGuard peer or removes one;
   * `urgent` when a peer goes or changes its key (a revoked node must be dropped at once).
   */
  onMeshChange(listener: (urgent: boolean) => void): void {
    this.meshChanged = listener;
  }

  private fleet(): Promise<FleetState> {
    return this.aggregates.load(fleetAggregate, FLEET).then((l) => l.state);
  }

  /**
   * A new invite: a random secret (only its hash is recorded) and a bootstrap credential that can
   * only ask to join. The credential is minted only after InviteIssued is recorded, and only for the
   * key that event names: every bootstrap JWT belongs to a recorded invite, so revoking the invite
   * reaches it. A run whose event was already recorded (the same command id) mints nothing.
   */
  async invite(
    args: { expiry_s: number; uses: number; note: string; overlay_ip?: string | undefined },
    cmd: CommandEnvelope,
  ): Promise<unknown> {
    const cidr = parseCidr(this.o.cidr);
    if (args.overlay_ip !== undefined && cidr && !inCidr(cidr, args.overlay_ip))
      return domainError("E_BAD_REQUEST", `overlay address ${args.overlay_ip} is not a host address of ${this.o.cidr}`);
    const secret = randomBytes(32);
    const secretText = secret.toString("base64url");
    secret.fill(0);
    const hash = sha256Hex(secretText);
    const expiresAt = new Date(this.now() + args.expiry_s * 1000);
    const seed = newUserSeed();
    try {
      const bootstrapKey = signerFromSeed(seed).publicKey;
      const r = await this.writeFleet(
        {
          type: "IssueInvite",
          hash,
          expiresAt: expiresAt.toISOString(),
          uses: args.uses,
          note: args.note,
          bootstrapKey,
          ...(args.overlay_ip === undefined ? {} : { address: args.overlay_ip }),
        },
        { actor: cmd.actor, commandId: cmd.id },
      );
      if (isDomainError(r)) return r;
      if (r.replayed) {
        return domainError(
          "E_INTERRUPTED",
          "this invite command was already run and its token cannot be shown again; revoke that invite (node invites) and create another",
        );
      }
      const creds = await this.bootstrapCreds("join", seed, expiresAt, `invite ${hash.slice(0, 12)}`, cmd.id);
      return this.inviteReply(args, hash, expiresAt, secretText, creds);
    } finally {
      seed.fill(0);
    }
  }

  private inviteReply(
    args: { uses: number; note: string },
    hash: string,
    expiresAt: Date,
    secretText: string,
    creds: { text: string },
  ) {
    const token: InviteToken = {
      v: 1,
      cluster: this.o.cluster,
      urls: this.o.urls,
      secret: secretText,
      creds: creds.text,
      ca: this.o.caFingerprint,
    };
    return {
      token: INVITE_PREFIX + Buffer.from(JSON.stringify(token)).toString("base64url"),
      hash,
      expires_at: expiresAt.toISOString(),
      uses: args.uses,
      note: args.note,
    };
  }

  /** The bundle a locked-down node waits with: the right to announce itself and nothing more. */
  async waitBundle(args: { expiry_s: number }, cmd: CommandEnvelope): Promise<unknown> {
    const expiresAt = new Date(this.now() + args.expiry_s * 1000);
    const seed = newUserSeed();
    let creds: { key: string; text: string };
    try {
      creds = await this.bootstrapCreds("wait", seed, expiresAt, "enroll-wait", cmd.id);
    } finally {
      seed.fill(0);
    }
    const bundle: WaitBundle = {
      v: 1,
      cluster: this.o.cluster,
      urls: this.o.urls,
      creds: creds.text,
      ca: this.o.caFingerprint,
    };
    return { bundle: Buffer.from(JSON.stringify(bundle)).toString("base64url"), expires_at: expiresAt.toISOString() };
  }

  /** A bootstrap identity is recorded like any other, so revoking it (with its invite) survives restarts. The caller zeroes `seed`. */
  private async bootstrapCreds(
    flow: "join" | "wait",
    seed: Uint8Array,
    expiresAt: Date,
    name: string,
    commandId: string,
  ): Promise<{ key: string; text: string }> {
    const key = signerFromSeed(seed).publicKey;
    const issued = await this.identities.issue({ key, role: "bootstrap", name, ctx: { flow }, expiresAt }, commandId);
    if (isDomainError(issued)) throw new Error(`cannot issue a bootstrap identity: ${issued.message}`);
    return { key, text: new TextDecoder().decode(credsFor(issued.jwt, seed)) };
  }

  async revokeInvite(args: { hash: string }, cmd: CommandEnvelope): Promise<unknown> {
    const r = await this.writeFleet(
      { type: "RevokeInvite", hashPrefix: args.hash },
      { actor: cmd.actor, commandId: cmd.id },
    );
    if (isDomainError(r)) return r;
    const hash = String(r.events[0]?.data.hash ?? "");
    const invite = (await this.fleet()).invites.get(hash);
    if (invite) await this.identities.revoke(invite.bootstrapKey, "invite revoked", cmd.id);
    return { hash, revoked: true };
  }

  /** Checks the request's own signature: the sender holds the seed of the key it enrolls. */
  private checkProof(body: JoinRequest | WaitAnnouncement, checkClock = true): DomainError | null {
    if (checkClock && Math.abs(Date.parse(body.ts) - this.now()) > CLOCK_WINDOW_MS)
      return domainError("E_CLOCK_SKEW", "the request's time is outside ±60 s of the server clock");
    // The node signs the body without either signature (a join's bootstrap_sig is over the same bytes).
    const { sig, bootstrap_sig: _bootstrapSig, ...rest } = body as JoinRequest;
    const bytes = decodeSignature(sig);
    if (!bytes || !verifySignature(body.sign_key, new TextEncoder().encode(canonicalJson(rest)), bytes)) {
      return domainError("E_PROOF", "the request is not signed by the key it enrolls");
    }
    return null;
  }

  /** Enrolls (or, for a retry with the same key, re-answers) and returns the node's configuration. */
  private async enroll(
    body: JoinRequest | WaitAnnouncement,
    inviteHash: string,
    flow: "join" | "code",
    commandId: string,
    actor: Actor,
  ): Promise<NodeConfig | DomainError> {
    const state = await this.fleet();
    const known = state.keys.get(body.sign_key);
    const previous = known === undefined ? undefined : state.nodes.get(known);
    const retry = previous && previous.status === "active" && previous.node === body.node;
    if (!retry) {
      const taken = await this.keyTaken(body);
      if (taken) return taken;
      const r = await this.writeFleet(
        {
          type: "EnrollNode",
          node: body.node,
          signKey: body.sign_key,
          kexKey: body.kex_key,
          labels: body.labels,
          inviteHash,
          flow,
          now: new Date(this.now()).toISOString(),
          cidr: this.o.cidr,
          // Covered by the node's signature (checkProof): nobody in between can swap the key.
          ...(body.wg_key === undefined ? {} : { wgKey: body.wg_key }),
          ...(body.wg_endpoint === undefined ? {} : { wgEndpoint: body.wg_endpoint }),
        },
        { actor, commandId },
      );
      if (isDomainError(r)) return r;
    }
    const node = (await this.fleet()).nodes.get(body.node);
    // A replayed command id appends nothing (this key's join was recorded before): only an
    // active node with this very key gets a JWT.
    if (node?.status !== "active" || node.signKey !== body.sign_key)
      return domainError("E_KEY_IN_USE", "that node key was already enrolled once; generate a new one");
    const issued = await this.identities.issue(
      { key: body.sign_key, role: "node", name: body.node, ctx: { node: body.node } },
      `enroll-${body.sign_key}`,
    );
    if (isDomainError(issued)) return issued;
    return {
      node: body.node,
      address: node.address,
      jwt: issued.jwt,
      urls: this.o.urls,
      ca: this.o.caFingerprint,
      cluster: this.o.cluster,
    };
  }

  /** A key that is (or was) another identity would get NodeEnrolled and then no JWT: refuse it first. */
  private async keyTaken(body: JoinRequest | WaitAnnouncement): Promise<DomainError | null> {
    const s = (await this.aggregates.load(identityAggregate, body.sign_key)).state;
    if (s.status === "none" || (s.status === "active" && s.role === "node" && s.name === body.node)) return null;
    return domainError(
      "E_KEY_IN_USE",
      "that key belongs to another identity (or a revoked one); generate a node key of your own",
    );
  }

  /** A join request the JoinGate parsed and charged. */
  async handleJoin(v: JoinRequest): Promise<unknown> {
    const bad = this.checkProof(v);
    if (bad) return errorReply(bad);
    // A joining node speaks for itself: it is the actor of its own enrollment.
    const result = await this.enroll(v, sha256Hex(v.secret), "join", `join-${sha256Hex(v.sign_key).slice(0, 32)}`, {
      id: v.node,
      key: v.sign_key,
    });
    return isDomainError(result) ? errorReply(result) : { ok: true, result };
  }

  /** A waiting node announces itself (again every few seconds); an enrolled one gets its sealed config back. */
  async handleAnnounce(raw: Uint8Array): Promise<unknown> {
    const parsed = parseRequest(raw, WaitAnnouncement);
    if ("reply" in parsed) return parsed.reply;
    const a = parsed.value;
    const bad = this.checkProof(a);
    if (bad) return errorReply(bad);
    const entry = await this.waiting.get(a.wait_id);
    const known = entry?.operation === "PUT" ? entry.json<Announcement>() : null;
    if (known && known.announcement.sign_key !== a.sign_key)
      return errorReply(domainError("E_CONFLICT", "another node waits with this code"));
    if (known?.config) {
      this.nc.publish(enrollWaitSubject(a.wait_id), JSON.stringify({ wait_id: a.wait_id, ...known.config }));
      return { ok: true, result: { state: "enrolled" } };
    }
    await this.waiting.put(a.wait_id, JSON.stringify({ announcement: a } satisfies Announcement));
    return { ok: true, result: { state: "waiting" } };
  }

  /** `unibus node enroll --code … --token …`: the operator vouches for a waiting node. */
  async enrollByCode(
    args: { wait_id: string; wait_key: string; secret: string },
    cmd: CommandEnvelope,
  ): Promise<unknown> {
    const entry = await this.waiting.get(args.wait_id);
    if (!entry || entry.operation !== "PUT")
      return domainError(
        "E_NODE_NOT_FOUND",
        "no node is waiting with that code (is `unibus-agent enroll-wait` running?)",
      );
    const { announcement } = entry.json<Announcement>();
    const bad = this.checkProof(announcement, false);
    if (bad) return bad;
    // The operator vouches for the waiting node: the enrollment is theirs.
    const config = await this.enroll(announcement, sha256Hex(args.secret), "code", cmd.id, cmd.actor);
    if (isDomainError(config)) return config;
    const sealed = await sealConfig(config, args.wait_key);
    await this.waiting.put(args.wait_id, JSON.stringify({ announcement, config: sealed } satisfies Announcement));
    this.nc.publish(enrollWaitSubject(args.wait_id), JSON.stringify({ wait_id: args.wait_id, ...sealed }));
    return { node: config.node, address: config.address };
  }

  async leaveOrRevoke(
    kind: "leave" | "revoke",
    args: { node: string; reason?: string },
    cmd: CommandEnvelope,
  ): Promise<unknown> {
    const command =
      kind === "leave"
        ? { type: "LeaveNode" as const, node: args.node }
        : { type: "RevokeNode" as const, node: args.node, reason: args.reason ?? "" };
    const before = (await this.fleet()).nodes.get(args.node);
    const r = await this.writeFleet(command, { actor: cmd.actor, commandId: cmd.id });
    if (isDomainError(r)) return r;
    if (before)
      await this.identities.revoke(
        before.signKey,
        kind === "leave" ? "node left" : (args.reason ?? "node revoked"),
        cmd.id,
      );
    return { node: args.node, status: kind === "leave" ? "left" : "revoked" };
  }

  /** node.wg_update: the node's new WireGuard key or endpoint; `changed` false when the fleet held them already. */
  async changeWg(
    args: { node: string; wg_key: string; wg_endpoint: string | null },
    cmd: CommandEnvelope,
  ): Promise<unknown> {
    const r = await this.writeFleet(
      { type: "ChangeNodeWg", node: args.node, wgKey: args.wg_key, wgEndpoint: args.wg_endpoint },
      { actor: cmd.actor, commandId: cmd.id },
    );
    if (isDomainError(r)) return r;
    return { node: args.node, wg_key: args.wg_key, wg_endpoint: args.wg_endpoint, changed: r.events.length > 0 };
  }
}

/** A node that joins with a WireGuard key, changes it, leaves or is revoked: every node's peer list changes. */
function changesMesh(e: { type: string; data: unknown }): boolean {
  if (e.type === "NodeLeft" || e.type === "NodeRevoked" || e.type === "NodeWgChanged") return true;
  return e.type === "NodeEnrolled" && (e.data as { wg_key?: string }).wg_key !== undefined;
}
