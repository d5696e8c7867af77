// Signed command envelopes with any field chosen, for tests that must send what a careless or
// hostile client would: the CLI's signCommand with overrides, and a signature over any body.
import { randomBytes } from "node:crypto";
import type { CommandEnvelope } from "../schemas/mod.ts";
import { canonicalJson, toBase64Url, type Signer } from "../services/core/mod.ts";

export interface Draft {
  signer?: Signer;
  actorId?: string;
  now?: Date;
  nonce?: string;
  id?: string;
}

/** A signed command (signCommand's envelope) with overrides; the actor id is "admin" unless set. */
export function signed(
  signer: Signer,
  action: string,
  args: Record<string, unknown>,
  o: Omit<Draft, "signer"> = {},
): CommandEnvelope {
  const body = {
    v: 1 as const,
    id: o.id ?? randomBytes(12).toString("base64url"),
    ts: (o.now ?? new Date()).toISOString(),
    nonce: o.nonce ?? randomBytes(18).toString("base64url"),
    actor: { id: o.actorId ?? "admin", key: signer.publicKey },
    action,
    args,
  };
  return { ...body, sig: resign(body, signer) };
}

/** The signature of an envelope body: Ed25519 over its canonical JSON without `sig`. */
export function resign(body: Record<string, unknown>, signer: Signer): string {
  const { sig: _drop, ...rest } = body;
  return toBase64Url(signer.sign(new TextEncoder().encode(canonicalJson(rest))));
}
