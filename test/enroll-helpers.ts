// What a joining node does, without the agent binary: keys, a signed join request, the request
// over the invite's bootstrap credential, and a connection with the identity it got back.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createCurve } from "@nats-io/nkeys";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  parseInviteToken,
  type InviteToken,
  type JoinRequest,
  type NodeConfig,
  type Reply,
  type WaitAnnounceRequest,
} from "../schemas/mod.ts";
import {
  canonicalJson,
  inboxPrefix,
  newUserSeed,
  signerFromSeed,
  signWaitAnnouncement,
  toBase64Url,
  type Signer,
} from "../services/core/mod.ts";
import { credsFor, parseCreds, seedFromCreds } from "../services/bus/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import type { SecurePlaneHandle } from "./harness.ts";

export interface NodeKeys {
  seed: Uint8Array;
  signer: Signer;
  kex: string;
}

export function nodeKeys(): NodeKeys {
  const seed = newUserSeed();
  return { seed, signer: signerFromSeed(seed), kex: createCurve().getPublicKey() };
}

function signed<T extends object>(body: T, signer: Signer): T & { sig: string } {
  return { ...body, sig: toBase64Url(signer.sign(new TextEncoder().encode(canonicalJson(body)))) };
}

export interface JoinOptions {
  node: string;
  secret: string;
  labels?: Record<string, string>;
  now?: number;
  /** Signs with this key instead of the one the request names (a forged proof). */
  signWith?: Signer;
  /** The node's WireGuard public key and endpoint, when it sends them. */
  wgKey?: string;
  wgEndpoint?: string;
}

export function joinRequest(keys: NodeKeys, o: JoinOptions): JoinRequest {
  const body = {
    v: 1 as const,
    ts: new Date(o.now ?? Date.now()).toISOString(),
    node: o.node,
    sign_key: keys.signer.publicKey,
    kex_key: keys.kex,
    labels: o.labels ?? {},
    secret: o.secret,
    ...(o.wgKey === undefined ? {} : { wg_key: o.wgKey }),
    ...(o.wgEndpoint === undefined ? {} : { wg_endpoint: o.wgEndpoint }),
  };
  return signed(body, o.signWith ?? keys.signer);
}

/** What enroll-wait sends: signed by the node's key and by the wait bundle's (from its .creds text). */
export function waitAnnouncement(
  keys: NodeKeys,
  node: string,
  waitId: string,
  bundleCreds: string,
): WaitAnnounceRequest {
  const seed = seedFromCreds(new TextEncoder().encode(bundleCreds));
  if (!seed) throw new Error("the bundle's creds hold no seed");
  const bundle = signerFromSeed(seed);
  const body = {
    v: 1 as const,
    ts: new Date().toISOString(),
    node,
    sign_key: keys.signer.publicKey,
    kex_key: keys.kex,
    labels: {},
    wait_id: waitId,
    bundle_key: bundle.publicKey,
  };
  return signWaitAnnouncement(body, keys.signer, bundle);
}

export function decodeInvite(token: string): InviteToken {
  const r = parseInviteToken(token);
  if ("problem" in r) throw new Error(r.problem);
  return r.token;
}

/** Connects with a bootstrap (or any) .creds text under its own inbox prefix, as the JWT demands. */
export function connectWithCreds(plane: SecurePlaneHandle, credsText: string): Promise<NatsConnection> {
  const bytes = new TextEncoder().encode(credsText);
  return plane.connectAs(bytes, inboxPrefix(parseCreds(bytes).publicKey));
}

/** Sends raw bytes (or JSON) on a subject over the bootstrap credential and returns the parsed reply. */
export async function requestWith(
  plane: SecurePlaneHandle,
  credsText: string,
  subject: string,
  payload: unknown,
): Promise<any> {
  const nc = await connectWithCreds(plane, credsText);
  try {
    const data = payload instanceof Uint8Array ? payload : JSON.stringify(payload);
    return (await nc.request(subject, data, { timeout: 10_000 })).json();
  } finally {
    await nc.close();
  }
}

export function sendJoin(plane: SecurePlaneHandle, token: InviteToken, req: unknown): Promise<any> {
  return requestWith(plane, token.creds, "unibus.enroll.join", req);
}

/** The node's own connection with the JWT it was given. */
export function connectNode(plane: SecurePlaneHandle, config: NodeConfig, keys: NodeKeys): Promise<NatsConnection> {
  return plane.connectAs(credsFor(config.jwt, keys.seed), inboxPrefix(keys.signer.publicKey));
}

/** Sends admin commands as the bootstrap admin over the service connection (the admin's envelope is what counts). */
export function adminClient(plane: SecurePlaneHandle) {
  const admin = signerFromSeed(readFileSync(join(plane.dataDir, "admin.nk"), "utf8"));
  return async (action: string, args: Record<string, unknown> = {}, nc: NatsConnection = plane.nc): Promise<Reply> =>
    sendCommand(nc, `unibus.cmd.membership.${action}`, buildCommand(admin, "admin", action, args), 15_000);
}

/** A fresh invite: its token decoded and its hash. */
export async function newInvite(
  send: ReturnType<typeof adminClient>,
  args: { expiry_s?: number; uses?: number; note?: string; overlay_ip?: string } = {},
) {
  const r = await send("node.invite", { expiry_s: 3600, uses: 1, note: "", ...args });
  if (!r.ok) throw new Error(`node.invite: ${r.error.code} ${r.error.message}`);
  const res = r.result as { token: string; hash: string };
  return { token: decodeInvite(res.token), hash: res.hash, raw: res.token };
}
