// What crosses the wire during enrollment: the invite token, a node's join request, a waiting
// node's announcement and the configuration handed back.
import { z } from "zod";
import { CurvePublicKey, IsoTime, Sha256Hex, Slug, UserPublicKey, WgEndpoint, WgPublicKey } from "./ids.ts";

export const NodeLabels = z
  .record(z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/), z.string().max(128))
  .refine((l) => Object.keys(l).length <= 32, "at most 32 labels");

export const INVITE_PREFIX = "unibus-invite:";

/** The decoded invite token: where to connect, the secret, a bootstrap credential, the CA fingerprint. */
export const InviteToken = z
  .object({
    v: z.literal(1),
    cluster: Slug,
    urls: z.array(z.string().min(1).max(200)).min(1).max(16),
    secret: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
    creds: z.string().min(1).max(4096),
    ca: Sha256Hex,
  })
  .strict();
export type InviteToken = z.infer<typeof InviteToken>;

/** The first line that is not blank or a `#` comment: what the CLI prints above its notes. */
export function firstLine(text: string): string {
  return (
    text
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l !== "" && !l.startsWith("#")) ?? ""
  );
}

type Parsed<T> = { value: T } | { problem: string };

/** base64url JSON checked against a schema; a one-sentence problem instead of a throw. */
function parseBase64Json<T>(body: string, schema: z.ZodType<T>, what: string): Parsed<T> {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
  } catch {
    return { problem: `the ${what} is damaged (not base64url JSON)` };
  }
  const r = schema.safeParse(json);
  return r.success ? { value: r.data } : { problem: `the ${what} is damaged (unexpected fields)` };
}

/** Reads a token string ("unibus-invite:" + base64url JSON); a reason instead when it is not one. */
export function parseInviteToken(text: string): { token: InviteToken } | { problem: string } {
  // The token may come inside `unibus node invite`'s own output, with its comment lines.
  const t = firstLine(text);
  if (!t.startsWith(INVITE_PREFIX)) return { problem: `an invite token starts with ${INVITE_PREFIX}` };
  const r = parseBase64Json(t.slice(INVITE_PREFIX.length), InviteToken, "invite token");
  return "value" in r ? { token: r.value } : r;
}

/** The bundle a locked-down node starts `enroll-wait` with: no secret, only the right to wait. */
export const WaitBundle = InviteToken.omit({ secret: true });
export type WaitBundle = z.infer<typeof WaitBundle>;

/** Reads a wait bundle (base64url JSON, possibly inside `unibus node wait-bundle`'s output). */
export function parseWaitBundle(text: string): Parsed<WaitBundle> {
  return parseBase64Json(firstLine(text), WaitBundle, "wait bundle");
}

const signedBody = {
  v: z.literal(1),
  ts: IsoTime,
  node: Slug,
  sign_key: UserPublicKey,
  kex_key: CurvePublicKey,
  labels: NodeLabels,
  /** The node's WireGuard public key (its private key stays in its data dir); optional for older agents. */
  wg_key: WgPublicKey.optional(),
  /** Where peers reach the node's WireGuard port, if it knows (host:port). */
  wg_endpoint: WgEndpoint.optional(),
};

/** Signed by the node's own key: proves it holds the seed of `sign_key`. */
export const JoinRequest = z
  .object({
    ...signedBody,
    secret: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
    /**
     * The invite's bootstrap key (the credential that sends the request), and its signature over the
     * same bytes as `sig`: membershipd charges join attempts to the credential proven to send them.
     * Optional for older agents, whose attempts share one bucket.
     */
    bootstrap_key: UserPublicKey.optional(),
    sig: z.string().regex(/^[A-Za-z0-9_-]{86}$/),
    bootstrap_sig: z
      .string()
      .regex(/^[A-Za-z0-9_-]{86}$/)
      .optional(),
  })
  .strict();
export type JoinRequest = z.infer<typeof JoinRequest>;

/** Signed by the node's own key; `bundle_key` names the wait bundle (bootstrap identity) it waits with. */
export const WaitAnnouncement = z
  .object({
    ...signedBody,
    wait_id: Sha256Hex,
    bundle_key: UserPublicKey,
    sig: z.string().regex(/^[A-Za-z0-9_-]{86}$/),
  })
  .strict();
export type WaitAnnouncement = z.infer<typeof WaitAnnouncement>;

/**
 * What a waiting node sends: its announcement and `bundle_sig`, the wait bundle's own key's
 * signature over the same body, so membershipd knows which bundle to charge the waiting node to.
 */
export const WaitAnnounceRequest = WaitAnnouncement.extend({
  bundle_sig: z.string().regex(/^[A-Za-z0-9_-]{86}$/),
}).strict();
export type WaitAnnounceRequest = z.infer<typeof WaitAnnounceRequest>;

/** What an enrolled node receives: its JWT (for its own key) and where it lives. */
export const NodeConfig = z
  .object({
    node: Slug,
    address: z.string(),
    jwt: z.string().min(1),
    urls: z.array(z.string()),
    ca: Sha256Hex,
    cluster: Slug,
  })
  .strict();
export type NodeConfig = z.infer<typeof NodeConfig>;

/** The sealed form of NodeConfig for the code flow (XChaCha20-Poly1305 under a key derived from the code). */
export const SealedConfig = z.object({ wait_id: Sha256Hex, nonce: z.string(), box: z.string() }).strict();

/** Where a joining node sends its JoinRequest (the bootstrap credential may publish only here). */
export const ENROLL_JOIN_SUBJECT = "unibus.enroll.join";
/** Where a waiting node announces itself; its sealed configuration comes on enrollWaitSubject. */
export const ENROLL_WAIT_ANNOUNCE_SUBJECT = "unibus.enroll.wait.announce";
export const enrollWaitSubject = (waitId: string) => `unibus.enroll.wait.${waitId}`;
