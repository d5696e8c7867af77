// The CAs an agent trusts for the servers' TLS: its ca.pem, pinned at enrollment, replaced only by
// a bundle membershipd hands over in node.trust that keeps at least one CA the agent trusts now.
// A rotation therefore always overlaps (old + new, then new alone) and an answer can never swap
// the whole trust for an unrelated CA in one step. Nor can it step back: while a roll restarts the
// membershipds one by one, one still on the old bundle may answer after one on the new, and an
// agent that took that answer dropped the new CA it then needed to reach the servers that switch
// to it. A bundle whose place in the rotation comes before the one held is kept out.
import { X509Certificate } from "node:crypto";
import { fingerprintOf } from "./ca-pin.ts";

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;
const MAX_CAS = 8;

/** The certificates of a PEM bundle, or the reason it is not a bundle of CA certificates. */
export function parseCaBundle(pem: string): X509Certificate[] | string {
  const blocks = pem.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) return "it holds no certificate";
  if (blocks.length > MAX_CAS) return `it holds ${blocks.length} certificates, more than ${MAX_CAS}`;
  const certs: X509Certificate[] = [];
  for (const block of blocks) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch (err) {
      return `a certificate does not parse (${(err as Error).message})`;
    }
    if (!cert.ca) return `${cert.subject.replace(/\n/g, ", ")} is not a CA certificate`;
    certs.push(cert);
  }
  return certs;
}

/** SHA-256 fingerprints of the bundle's CAs ([] when it does not parse). */
export function caFingerprints(pem: string): string[] {
  const certs = parseCaBundle(pem);
  return typeof certs === "string" ? [] : certs.map(fingerprintOf);
}

/** The bundle to write in place of `current`, or why not ("same" when it holds the same CAs). */
export function caBundleUpdate(current: string, offered: string): { adopt: string } | { keep: string } {
  const certs = parseCaBundle(offered);
  if (typeof certs === "string") return { keep: `the offered CA bundle is refused: ${certs}` };
  const now = new Set(caFingerprints(current));
  const next = certs.map(fingerprintOf);
  if (next.length === now.size && next.every((f) => now.has(f))) return { keep: "same" };
  if (!next.some((f) => now.has(f)))
    return { keep: "the offered CA bundle shares no CA with the one trusted now; a rotation keeps one in both" };
  const held = parseCaBundle(current);
  if (typeof held !== "string" && comesBefore(rotationPlace(certs), rotationPlace(held)))
    return {
      keep: "the offered CA bundle is older than the one trusted now (from a membershipd a roll has not reached yet)",
    };
  return { adopt: certs.map((c) => c.toString()).join("") };
}

/**
 * Where a bundle stands in a rotation: its newest CA's start, then its oldest CA's. Each phase
 * moves it forward: begin adds a newer CA ({old} → {old, new}), finish drops the older ({old, new}
 * → {new}), and so does a rotation begun again over an abandoned one ({old, newer}). CAs made
 * within the same second tie, and a tie is adopted as before.
 */
function rotationPlace(certs: X509Certificate[]): [number, number] {
  const starts = certs.map((c) => Date.parse(c.validFrom));
  return [Math.max(...starts), Math.min(...starts)];
}

function comesBefore(a: [number, number], b: [number, number]): boolean {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}
