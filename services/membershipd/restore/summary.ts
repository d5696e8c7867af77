// What a finished restore prints: what came back, and what to run next.
import type { RestoreSummary } from "./restore.ts";

export function restoreSummaryText(s: RestoreSummary): string {
  const lines = [
    `restored cluster ${s.cluster} from the backup ${s.madeBy} made at ${s.createdAt} into ${s.dataDir} in ${s.seconds.toFixed(1)} s:`,
    ...s.streams.map((st) => `  ${st.name}: ${st.messages} messages, last sequence ${st.lastSeq}`),
    `  ${s.messages} messages in ${s.streams.length} streams; ${s.events} events, last sequence ${s.eventsLastSeq}, events head ${s.eventsHead ?? "(none)"}`,
    `  the store is encrypted with the at-rest key in ${s.atRestKeyFile}`,
  ];
  if (s.replaced.length > 0)
    lines.push(
      `  replaced ${s.replaced.join(", ")}: moved aside to ${s.movedAside}; delete it once the restored membershipd runs`,
    );
  lines.push(
    `next: start membershipd on ${s.dataDir} as usual (same --nats-port and --advertise as before, so enrolled nodes`,
    `reconnect with the credentials they hold); it rebuilds every projection from the event stream as it starts.`,
    `Then \`unibus audit verify\` should report last sequence ${s.eventsLastSeq}.`,
  );
  return lines.join("\n") + "\n";
}
