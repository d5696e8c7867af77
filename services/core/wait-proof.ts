// A waiting node's announcement carries two signatures over the same bytes (the body without
// either): the node's own key (it holds the seed of the key it enrolls) and the wait bundle's
// key (it holds the bundle it waits with). The second lets membershipd bound what one bundle may
// register, charged to a bundle proven, never to one merely named. A join request does the same
// with its invite's bootstrap key: the credential that sends it, to which its attempts are charged.
import type { JoinRequest, WaitAnnouncement, WaitAnnounceRequest } from "../../schemas/mod.ts";
import { canonicalJson } from "./signing/canonical.ts";
import { decodeSignature, toBase64Url, verifySignature, type Signer } from "./signing/crypto.ts";

type Body = Omit<WaitAnnouncement, "sig">;

function signedBytes(body: object): Uint8Array {
  return new TextEncoder().encode(canonicalJson(body));
}

/** The request a waiting node sends; `body.bundle_key` must be `bundle`'s public key. */
export function signWaitAnnouncement(body: Body, node: Signer, bundle: Signer): WaitAnnounceRequest {
  if (body.bundle_key !== bundle.publicKey)
    throw new Error("the announcement names another wait bundle than the one signing it");
  const bytes = signedBytes(body);
  return { ...body, sig: toBase64Url(node.sign(bytes)), bundle_sig: toBase64Url(bundle.sign(bytes)) };
}

/** Splits a request into the announcement (node-signed, as stored) and whether the bundle's signature holds. */
export function checkBundleProof(req: WaitAnnounceRequest): { announcement: WaitAnnouncement; bundleSigned: boolean } {
  const { bundle_sig, ...announcement } = req;
  const { sig: _sig, ...body } = announcement;
  const bytes = decodeSignature(bundle_sig);
  return { announcement, bundleSigned: bytes !== null && verifySignature(req.bundle_key, signedBytes(body), bytes) };
}

type JoinBody = Omit<JoinRequest, "sig" | "bootstrap_sig">;

/** The join request a node sends: signed by its own key and by the invite's bootstrap key it names. */
export function signJoinRequest(body: JoinBody, node: Signer, bootstrap: Signer): JoinRequest {
  if (body.bootstrap_key !== bootstrap.publicKey)
    throw new Error("the join request names another bootstrap key than the one signing it");
  const bytes = signedBytes(body);
  return { ...body, sig: toBase64Url(node.sign(bytes)), bootstrap_sig: toBase64Url(bootstrap.sign(bytes)) };
}

/** The bootstrap key a join request is proven to come from; null when it names none or its signature fails. */
export function provenJoinSource(req: JoinRequest): string | null {
  const { sig: _sig, bootstrap_sig, ...body } = req;
  if (!req.bootstrap_key || !bootstrap_sig) return null;
  const bytes = decodeSignature(bootstrap_sig);
  return bytes !== null && verifySignature(req.bootstrap_key, signedBytes(body), bytes) ? req.bootstrap_key : null;
}
