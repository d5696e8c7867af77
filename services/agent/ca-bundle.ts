// The CAs an agent trusts for the servers' TLS: its ca.pem, pinned at enrollment, replaced only by
// a bundle membershipd hands over in node.trust that keeps at least one CA the agent trusts now.
// A rotation therefore always overlaps (old + new, then new alone) and an answer can never swap
// the whole trust for an unrelated CA in one step.
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
  return { adopt: certs.map((c) => c.toString()).join("") };
}
