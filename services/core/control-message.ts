// Control messages: what membershipd broadcasts on a subject its receivers act on without a
// command envelope (`unibus.cluster.writes`, `unibus.trust.changed`). A push consumer lets whoever
// may create one have the server publish stored messages on any subject, so a receiver acts only
// on a message signed by a key it knows to be membershipd's, for this very subject, within the
// clock window.
import { z } from "zod";
import { canonicalJson } from "./signing/canonical.ts";
import { decodeSignature, toBase64Url, verifySignature, type Signer } from "./signing/crypto.ts";
import { parseUntrustedJson } from "./json-limits.ts";

/** Larger payloads are refused before they are parsed. */
export const MAX_CONTROL_BYTES = 4096;
/** The same window as signed commands. */
export const CONTROL_SKEW_MS = 60_000;
const DOMAIN = "unibus-control-v1\n";

const ControlMessage = z
  .object({
    v: z.literal(1),
    subject: z.string().max(256),
    at: z.iso.datetime(),
    body: z.record(z.string(), z.unknown()),
    key: z.string().max(64),
    sig: z.string().max(128),
  })
  .strict();

function signedBytes(m: { v: 1; subject: string; at: string; body: Record<string, unknown>; key: string }): Uint8Array {
  return new TextEncoder().encode(DOMAIN + canonicalJson(m));
}

export function signControl(
  subject: string,
  body: Record<string, unknown>,
  signer: Signer,
  now: Date = new Date(),
): string {
  const m = { v: 1 as const, subject, at: now.toISOString(), body, key: signer.publicKey };
  return JSON.stringify({ ...m, sig: toBase64Url(signer.sign(signedBytes(m))) });
}

export type CheckedControl = { ok: true; body: Record<string, unknown>; at: number } | { ok: false; reason: string };

/** The body of a control message `subject` carries, if one of `keys` signed it for that subject just now. */
export function checkControl(
  subject: string,
  data: Uint8Array,
  keys: readonly string[],
  now: number = Date.now(),
): CheckedControl {
  if (data.length === 0) return { ok: false, reason: "empty" };
  const raw = parseUntrustedJson(data, { maxBytes: MAX_CONTROL_BYTES, maxDepth: 8, what: "the message" });
  if (!raw.ok) return { ok: false, reason: raw.error.message };
  const parsed = ControlMessage.safeParse(raw.value);
  if (!parsed.success) return { ok: false, reason: "not a signed control message" };
  const { sig, ...m } = parsed.data;
  if (m.subject !== subject) return { ok: false, reason: `signed for ${m.subject}` };
  if (!keys.includes(m.key)) return { ok: false, reason: "signed by a key that is not membershipd's" };
  const bytes = decodeSignature(sig);
  if (!bytes || !verifySignature(m.key, signedBytes(m), bytes)) return { ok: false, reason: "bad signature" };
  const at = Date.parse(m.at);
  if (Math.abs(now - at) > CONTROL_SKEW_MS)
    return { ok: false, reason: `sent at ${m.at}, outside the ±${CONTROL_SKEW_MS / 1000} s window` };
  return { ok: true, body: m.body, at };
}

/**
 * A log for refused control messages that a flood cannot turn into a flood of lines: the first
 * is written at once, then at most one line per interval, with how many were left out.
 */
export function quietLog(
  log: ((line: string) => void) | undefined,
  intervalMs = 10_000,
  now: () => number = Date.now,
): (line: string) => void {
  let last = -Infinity;
  let skipped = 0;
  return (line) => {
    if (!log) return;
    const t = now();
    if (t - last < intervalMs) {
      skipped++;
      return;
    }
    log(skipped ? `${line} (and ${skipped} more since the last such line)` : line);
    last = t;
    skipped = 0;
  };
}
