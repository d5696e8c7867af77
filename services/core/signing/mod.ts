// The signing code: canonical JSON, Ed25519 over nkeys, Merkle batches, minisign, and the command and
// event envelopes built from them. A new command's clock and randomness are inputs (signCommand).
export { canonicalJson } from "./canonical.ts";
export * from "./crypto.ts";
export * from "./envelope.ts";
export * from "./minisign.ts";
