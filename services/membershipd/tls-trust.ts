// The CA bundle agents trust for the servers' TLS follows membershipd's tls/ca.pem: node.trust hands
// it over, and a membershipd that starts with a bundle it has not announced yet (the first restart
// of a CA rotation's phase) nudges every agent to ask node.trust again. docs/operations.md,
// "Rotating the CAs".
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";

/** Reads the bundle again only when the file changed (node.trust asks it per agent). */
export function caBundleReader(caFile: string): () => string | null {
  let cached: { mtimeMs: number; pem: string } | null = null;
  return () => {
    try {
      const { mtimeMs } = statSync(caFile);
      if (cached?.mtimeMs !== mtimeMs) cached = { mtimeMs, pem: readFileSync(caFile, "utf8") };
      return cached.pem;
    } catch {
      return null;
    }
  };
}

/** Calls `nudge` when the bundle differs from the one this data dir last announced, then records it. */
export function announceCaBundleChange(caFile: string, announcedFile: string, nudge: () => void): boolean {
  if (!existsSync(caFile)) return false;
  const digest = createHash("sha256").update(readFileSync(caFile)).digest("hex");
  const before = existsSync(announcedFile) ? readFileSync(announcedFile, "utf8").trim() : null;
  if (before === digest) return false;
  // The first start of a plane records its bundle: agents enrolled against it hold it already.
  if (before !== null) nudge();
  writeFileSync(announcedFile, `${digest}\n`, { mode: 0o600 });
  return before !== null;
}
