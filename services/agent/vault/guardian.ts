// The guardian's endpoint, `unibus.vault.<this node>.share`: an owner node asks for the share of
// its key this node guards, with a signed `vault.share` request that names an ephemeral X25519
// key. The guardian checks the request (size and depth, schema, clock, addressed to it, asked by the
// owner for itself, signed by the key it names, not replayed by that key, the owner has a token
// left), then hands it to membershipd (`vault.fetch`), which authenticates it (the owner's current
// key and identity, the epoch) and returns the share sealed to this guardian. Only then is the
// owner's rate-limit token spent: a request signed by any other key never touches the owner's
// bucket. The guardian opens the share, seals it to the ephemeral key, answers, and zeroes the
// opened share and its own secret key before the handler returns.
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  FetchResult,
  Reply,
  SHARE_ACTION,
  ShareReleaseResult,
  ShareRequestArgs,
  nodeActorId,
  vaultShareSubject,
  type CommandEnvelope,
} from "../../../schemas/mod.ts";
import {
  CLOCK_WINDOW_MS,
  checkCommandFront,
  checkCommandSignature,
  domainError,
  errorReply,
  fromBase64Url,
  kexPairFromSeed,
  openSealed,
  replyGuard,
  sealTo,
  zodMessage,
} from "../../core/mod.ts";
import { TokenBuckets, type RateLimit } from "./pacing.ts";

export interface GuardianOptions {
  node: string;
  /** The node's curve seed (kex.nk), read for each request; zeroed here after use. */
  kexSeed(): Uint8Array;
  /** A signed request to membershipd as this node. */
  ask(action: string, args: Record<string, unknown>): Promise<Reply>;
  rateLimit?: RateLimit;
  now?: () => number;
  log?: (line: string) => void;
  /** Test hook: a dishonest guardian's change to the share before it is re-sealed. */
  tamper?: (share: Uint8Array) => void;
}

export interface Guardian {
  released: number;
  refused: number;
  stop(): Promise<void>;
}

const refuse = (message: string) => errorReply(domainError("E_SHARE_REFUSED", message));

/**
 * Nonces of signed requests already taken, per signing key (so a request under another key, which
 * anyone can make, cannot use up the owner's nonce), kept past the clock window (after which the
 * clock check refuses them). Entries expire in the order they were added: pruning stops at the
 * first live one.
 */
class SeenNonces {
  private readonly seen = new Map<string, number>();
  constructor(private readonly now: () => number) {}
  claim(key: string, nonce: string): boolean {
    const t = this.now();
    for (const [n, exp] of this.seen) {
      if (exp >= t) break;
      this.seen.delete(n);
    }
    const id = `${key} ${nonce}`;
    if ((this.seen.get(id) ?? 0) >= t) return false;
    this.seen.delete(id);
    this.seen.set(id, t + 2 * CLOCK_WINDOW_MS);
    return true;
  }
}

const rateLimited = (owner: string) =>
  errorReply(domainError("E_RATE_LIMITED", `${owner} asked for its share too often; wait and retry`));

export async function handleShareRequest(
  raw: Uint8Array,
  o: GuardianOptions,
  state: { nonces: SeenNonces; buckets: TokenBuckets },
): Promise<Reply> {
  const now = o.now ?? Date.now;
  const front = checkCommandFront(raw, SHARE_ACTION, now());
  if (!front.ok) return errorReply(front.error);
  const cmd: CommandEnvelope = front.value;
  const parsed = ShareRequestArgs.safeParse(cmd.args);
  if (!parsed.success)
    return errorReply(domainError("E_BAD_REQUEST", `bad arguments for ${SHARE_ACTION}: ${zodMessage(parsed.error)}`));
  const a = parsed.data;
  if (a.guardian !== o.node) return refuse(`this guardian is ${o.node}, not ${a.guardian}`);
  if (cmd.actor.id !== nodeActorId(a.owner))
    return refuse(`${cmd.actor.id} asked for ${a.owner}'s share; a node gets only its own shares`);
  const badSig = checkCommandSignature(cmd);
  if (badSig) return errorReply(badSig);
  if (!state.nonces.claim(cmd.actor.key, cmd.nonce))
    return errorReply(domainError("E_NONCE_REUSED", "this request was already answered"));
  // Looked at, not spent: the request is not known to be the owner's yet.
  if (!state.buckets.allows(a.owner)) return rateLimited(a.owner);

  const fetched = await o.ask("vault.fetch", { owner: a.owner, guardian: o.node, epoch: a.epoch, request: cmd });
  if (!fetched.ok) return { ok: false, error: fetched.error };
  const f = FetchResult.safeParse(fetched.result);
  if (!f.success) return errorReply(domainError("E_INTERNAL", "membershipd answered vault.fetch with something else"));
  if (f.data.owner_key !== cmd.actor.key) return refuse(`the request is not signed with ${a.owner}'s current key`);
  // Authenticated (membershipd checked the owner's current key): now the owner's token is spent.
  state.buckets.charge(a.owner);

  const seed = o.kexSeed();
  const pair = await kexPairFromSeed(seed);
  seed.fill(0);
  let share: Uint8Array | null = null;
  try {
    share = await openSealed(f.data.sealed, pair);
    if (!share)
      return errorReply(domainError("E_INTERNAL", `the stored share of ${a.owner} does not open with ${o.node}'s key`));
    o.tamper?.(share);
    const sealed = await sealTo(fromBase64Url(a.ephemeral), share);
    return { ok: true, result: ShareReleaseResult.parse({ guardian: o.node, epoch: a.epoch, sealed }) };
  } finally {
    share?.fill(0);
    pair.secretKey.fill(0);
  }
}

export function startGuardian(nc: NatsConnection, o: GuardianOptions): Guardian {
  const state = { nonces: new SeenNonces(o.now ?? Date.now), buckets: new TokenBuckets(o.rateLimit, o.now) };
  // Unsubscribed, not drained: the agent drains its whole connection right after (and a drain of
  // a connection the server has cut never ends, so nothing here waits on one).
  const g: Guardian = { released: 0, refused: 0, stop: async () => void sub.unsubscribe() };
  const inboxOnly = replyGuard("vault", o.log);
  const sub: Subscription = nc.subscribe(vaultShareSubject(o.node), {
    callback: (err, msg: Msg) => {
      if (err || !inboxOnly(msg.subject, msg.reply)) return;
      void handleShareRequest(msg.data, o, state)
        .catch((e) =>
          errorReply(domainError("E_UNAVAILABLE", `the guardian could not reach membershipd: ${(e as Error).message}`)),
        )
        .then((reply) => {
          if (reply.ok) g.released++;
          else {
            g.refused++;
            o.log?.(`vault: refused a share request: ${reply.error.code} ${reply.error.message}`);
          }
          msg.respond(JSON.stringify(reply));
        });
    },
  });
  return g;
}
