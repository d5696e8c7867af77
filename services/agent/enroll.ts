// The two ways a node joins: with an invite token (`join`), or by waiting with a code an operator
// enrolls (`enroll-wait`). Either way the CA is pinned before anything is sent, the keys are made
// here and only public keys leave, and the node ends by connecting with its own identity.
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { UserAuthenticationExpiredError, type NatsConnection } from "@nats-io/transport-node";
import {
  ENROLL_JOIN_SUBJECT,
  ENROLL_WAIT_ANNOUNCE_SUBJECT,
  parseInviteToken,
  parseWaitBundle,
  type InviteToken,
  enrollWaitSubject,
  NodeConfig,
  Reply,
  SealedConfig,
  type WaitBundle,
  type JoinRequest,
} from "../../schemas/mod.ts";
import { classifyNatsError, connectNats, parseCreds, seedFromCreds } from "../bus/mod.ts";
import {
  deriveWaitKey,
  inboxPrefix,
  newEnrollCode,
  openConfig,
  signerFromSeed,
  signJoinRequest,
  signWaitAnnouncement,
  waitIdFor,
  type ErrorCode,
  type Signer,
  backoffMs,
} from "../core/mod.ts";
import { fetchPinnedCa } from "./ca-pin.ts";
import type { NodeStore } from "./node-store.ts";

export class EnrollError extends Error {
  readonly code: string;
  /** A registered code only (services/core/errors.ts). */
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }

  /** membershipd's refusal as it came: its code is data, perhaps one a newer server added. */
  static fromAnswer(code: string, message: string): EnrollError {
    return Object.assign(new EnrollError("E_INTERNAL", message), { code });
  }
}

const ANNOUNCE_EVERY_MS = 3000;

export interface JoinOptions {
  node: string;
  labels: Record<string, string>;
  /** Where peers reach this node's WireGuard port (host:port, checked by the caller); none when unset. */
  wgEndpoint?: string;
  timeoutMs: number;
  log: (line: string) => void;
}

export function decodeInvite(text: string): InviteToken {
  const r = parseInviteToken(text);
  if ("problem" in r) throw new EnrollError("E_BAD_TOKEN", r.problem);
  return r.token;
}

export function decodeWaitBundle(text: string): WaitBundle {
  const r = parseWaitBundle(text);
  if ("problem" in r) throw new EnrollError("E_BAD_TOKEN", r.problem);
  return r.value;
}

/** Pins the CA from the first URL that answers; the PEM goes to a private temp file for the client. */
async function pinCa(
  urls: string[],
  fingerprint: string,
  log: (l: string) => void,
): Promise<{ pem: string; url: string }> {
  let last: Error | null = null;
  for (const url of urls) {
    try {
      const pem = await fetchPinnedCa(url, fingerprint);
      log(`${url}: the server's CA matches the invite (${fingerprint.slice(0, 16)}…)`);
      return { pem, url };
    } catch (err) {
      if ((err as { code?: string }).code === "E_CA_MISMATCH")
        throw new EnrollError("E_CA_MISMATCH", (err as Error).message);
      last = err as Error;
    }
  }
  throw new EnrollError("E_UNAVAILABLE", `no server in the invite answered: ${last?.message}`);
}

async function withCaFile<T>(pem: string, fn: (caFile: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(joinPath(tmpdir(), "unibus-agent-"));
  const caFile = joinPath(dir, "ca.pem");
  writeFileSync(caFile, pem, { mode: 0o600 });
  try {
    return await fn(caFile);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function connectBootstrap(url: string, caFile: string, creds: string): Promise<NatsConnection> {
  const bytes = new TextEncoder().encode(creds);
  const { publicKey } = parseCreds(bytes, "the invite's bootstrap credential");
  try {
    return await connectNats({
      servers: url,
      name: "unibus-agent-enroll",
      caFile,
      creds: bytes,
      inboxPrefix: inboxPrefix(publicKey),
    });
  } catch (err) {
    const msg = (err as Error).message;
    if (err instanceof UserAuthenticationExpiredError)
      throw new EnrollError("E_INVITE_EXPIRED", "the invite's bootstrap credential has expired; ask for a new invite");
    if (classifyNatsError(err) === "refused")
      throw new EnrollError(
        "E_INVITE_REFUSED",
        `the server refused the invite's bootstrap credential (revoked or expired): ${msg}`,
      );
    throw new EnrollError("E_UNAVAILABLE", `cannot reach ${url}: ${msg}`);
  }
}

function configFrom(raw: unknown): NodeConfig {
  const reply = Reply.safeParse(raw);
  if (!reply.success) throw new EnrollError("E_BAD_REPLY", "membershipd sent a malformed reply");
  if (!reply.data.ok) throw EnrollError.fromAnswer(reply.data.error.code, reply.data.error.message);
  const config = NodeConfig.safeParse(reply.data.result);
  if (!config.success) throw new EnrollError("E_BAD_REPLY", "membershipd's reply holds no node configuration");
  return config.data;
}

/** Connects once with the node's own identity: enrollment is done only when that works. */
async function proveIdentity(store: NodeStore, config: NodeConfig, caFile: string, signer: Signer): Promise<void> {
  const nc = await connectNats({
    servers: config.urls,
    name: `unibus-agent-${config.node}`,
    caFile,
    creds: store.creds(),
    inboxPrefix: inboxPrefix(signer.publicKey),
  });
  await nc.flush();
  await nc.close();
}

const TRANSIENT = new Set(["E_CONFLICT", "E_UNAVAILABLE"]);

/**
 * A join is idempotent for its key (membershipd answers a repeat without using the invite again),
 * so a busy or briefly unreachable control plane is simply asked again, a few times.
 */
async function withRetries<T>(attempt: () => Promise<T>, log: (line: string) => void, tries = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof EnrollError) || !TRANSIENT.has(err.code) || i >= tries) throw err;
      const delay = backoffMs(i, { minMs: 250, maxMs: 8_000, jitter: 0.5 });
      log(`${err.message}; retrying in ${Math.round(delay)} ms`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/**
 * What the node says about itself in a join or a wait announcement, all of it under its signature:
 * its public keys (WireGuard's too, made here on first use) and, if given, its WireGuard endpoint.
 */
export function selfDescription(store: NodeStore, o: JoinOptions) {
  const { signer, kexPublicKey } = store.keys();
  const body = {
    v: 1 as const,
    ts: new Date().toISOString(),
    node: o.node,
    sign_key: signer.publicKey,
    kex_key: kexPublicKey,
    labels: o.labels,
    wg_key: store.wgPublicKey(),
    ...(o.wgEndpoint === undefined ? {} : { wg_endpoint: o.wgEndpoint }),
  };
  return { signer, body };
}

/**
 * The join request (the invite's secret in it), signed by the node's key and by the invite's
 * bootstrap key (membershipd charges join attempts to it); exported for its test.
 */
export function joinRequest(
  store: NodeStore,
  token: InviteToken,
  o: JoinOptions,
): { signer: Signer; request: JoinRequest } {
  const { signer, body } = selfDescription(store, o);
  const bootstrap = bundleSignerOf(token.creds, "the invite's credential holds no key");
  return {
    signer,
    request: signJoinRequest({ ...body, secret: token.secret, bootstrap_key: bootstrap.publicKey }, signer, bootstrap),
  };
}

export async function join(store: NodeStore, tokenText: string, o: JoinOptions): Promise<NodeConfig> {
  const token = decodeInvite(tokenText);
  const { pem, url } = await pinCa(token.urls, token.ca, o.log);
  const { signer, request } = joinRequest(store, token, o);
  return await withCaFile(pem, async (caFile) => {
    const nc = await connectBootstrap(url, caFile, token.creds);
    let config: NodeConfig;
    try {
      config = await withRetries(async () => {
        try {
          return configFrom(
            (await nc.request(ENROLL_JOIN_SUBJECT, JSON.stringify(request), { timeout: o.timeoutMs })).json(),
          );
        } catch (err) {
          if (err instanceof EnrollError) throw err;
          throw new EnrollError("E_UNAVAILABLE", `no answer to the join request: ${(err as Error).message}`);
        }
      }, o.log);
    } finally {
      await nc.close().catch(() => {});
    }
    store.saveEnrollment(config, pem);
    await proveIdentity(store, config, store.path("ca"), signer);
    return config;
  });
}

export interface WaitOptions extends JoinOptions {
  /** Shown on the console for the operator to type into `unibus node enroll --code`. */
  onCode: (code: string) => void;
  signal?: AbortSignal;
}

/** A bootstrap credential's own key (a wait bundle's, an invite's), from the seed in it. */
function bundleSignerOf(creds: string, missing = "the wait bundle's credential holds no key"): Signer {
  const seed = seedFromCreds(new TextEncoder().encode(creds));
  if (!seed) throw new EnrollError("E_BAD_TOKEN", missing);
  try {
    return signerFromSeed(seed);
  } finally {
    seed.fill(0);
  }
}

/** Announces itself every few seconds until an operator enrolls it by code, then opens the sealed config. */
export async function enrollWait(store: NodeStore, bundleText: string, o: WaitOptions): Promise<NodeConfig> {
  const bundle = decodeWaitBundle(bundleText);
  const { pem, url } = await pinCa(bundle.urls, bundle.ca, o.log);
  const { signer, body: self } = selfDescription(store, o);
  const bundleSigner = bundleSignerOf(bundle.creds);
  const code = newEnrollCode();
  const waitId = waitIdFor(code);
  const waitKey = deriveWaitKey(code);
  o.onCode(code);
  return await withCaFile(pem, async (caFile) => {
    const nc = await connectBootstrap(url, caFile, bundle.creds);
    try {
      const sealed = nc.subscribe(enrollWaitSubject(waitId), { max: 1 });
      const announce = async () => {
        // Signed by the bundle's key too: membershipd counts waiting nodes per bundle it can prove.
        const body = signWaitAnnouncement(
          { ...self, ts: new Date().toISOString(), wait_id: waitId, bundle_key: bundleSigner.publicKey },
          signer,
          bundleSigner,
        );
        const reply = Reply.safeParse(
          (await nc.request(ENROLL_WAIT_ANNOUNCE_SUBJECT, JSON.stringify(body), { timeout: o.timeoutMs })).json(),
        );
        if (reply.success && !reply.data.ok)
          throw EnrollError.fromAnswer(reply.data.error.code, reply.data.error.message);
      };
      const timer = setInterval(
        () => void announce().catch((e: Error) => o.log(`announce: ${e.message}`)),
        ANNOUNCE_EVERY_MS,
      );
      o.signal?.addEventListener("abort", () => sealed.unsubscribe(), { once: true });
      try {
        await announce();
        for await (const m of sealed) {
          const box = SealedConfig.safeParse(m.json());
          const config = box.success ? await openConfig(box.data, waitKey) : null;
          if (!config) throw new EnrollError("E_BAD_REPLY", "the sealed configuration does not open with this code");
          store.saveEnrollment(config, pem);
          await proveIdentity(store, config, store.path("ca"), signer);
          return config;
        }
        throw new EnrollError("E_ABORTED", "stopped waiting before an operator enrolled this node");
      } finally {
        clearInterval(timer);
      }
    } finally {
      await nc.close().catch(() => {});
    }
  });
}
