// What a finished rekey prints: what was copied, where the key and the old store are, what to do next.
import type { RekeySummary } from "./rekey.ts";

export function rekeySummaryText(s: RekeySummary): string {
  const what =
    s.encrypted === "from-plaintext"
      ? "encrypted the plaintext store"
      : s.encrypted === "rotated"
        ? "re-encrypted the store under a new key"
        : "finished the swap of an interrupted rekey";
  const lines = [
    `${what} in ${s.dataDir} in ${s.seconds.toFixed(1)} s:`,
    ...s.streams.map((st) => `  ${st.name}: ${st.messages} messages, last sequence ${st.lastSeq}`),
  ];
  if (s.encrypted !== "resumed")
    lines.push(
      `  events head ${s.eventsHead ?? "(none)"}; rebuilt when membershipd starts: ${s.skipped.join(", ") || "nothing"}`,
    );
  lines.push(`  the store is encrypted with the at-rest key in ${s.keyFile}`);
  lines.push(
    s.aside
      ? `  the old store and its key were moved to ${s.aside}: once membershipd runs on the new store, shred it (e.g. \`find ${s.aside} -type f -exec shred -u {} +\` then \`rm -r ${s.aside}\`); until then it still holds the data readable with the old key, or in clear`
      : `  the old store was overwritten and deleted (--discard-old)`,
  );
  lines.push(
    `next: start membershipd as usual; it rebuilds the projections from the event stream, and \`unibus audit verify\` reports the same last sequence as before.`,
  );
  return lines.join("\n") + "\n";
}
