// What `cluster scale` shows on stderr while membershipd works: a `cluster status` every few
// seconds, summed up as one line (streams whose replicas are all current, and what the others wait
// on). The scale itself is one request; its answer and --json are unchanged by this.
import { z } from "zod";
import type { Send } from "./session.ts";

const Status = z.object({
  streams: z.array(
    z.object({
      stream: z.string(),
      replicas: z.number(),
      followers: z.array(z.object({ name: z.string(), current: z.boolean(), offline: z.boolean(), lag: z.number() })),
    }),
  ),
});
type StreamRow = z.infer<typeof Status>["streams"][number];

/** Why a stream is not yet at `target` current replicas, or null when it is. */
function waitingOn(s: StreamRow, target: number): string | null {
  if (s.replicas !== target) return `R${s.replicas}`;
  const behind = s.followers
    .filter((f) => f.offline || !f.current)
    .map((f) => `${f.name} ${f.offline ? "offline" : `lag ${f.lag}`}`);
  const missing = target - 1 - s.followers.length;
  if (missing > 0) behind.push(`${missing} replica${missing > 1 ? "s" : ""} not placed yet`);
  return behind.length ? behind.join(", ") : null;
}

/** One progress line from a `cluster.status` result; `elapsedMs` since the scale was sent. */
export function scaleProgressText(status: unknown, target: number, elapsedMs: number): string {
  const head = `cluster scale: ${Math.round(elapsedMs / 1000)} s`;
  const parsed = Status.safeParse(status);
  if (!parsed.success) return `${head}, status unreadable`;
  const rows = parsed.data.streams;
  const pending = rows.flatMap((s) => {
    const why = waitingOn(s, target);
    return why ? [`${s.stream} (${why})`] : [];
  });
  if (pending.length === 0)
    return `${head}, all ${rows.length} streams at ${target} current replicas; checking the copies`;
  const shown = pending.slice(0, 3).join(", ") + (pending.length > 3 ? `, +${pending.length - 3} more` : "");
  const done = `${rows.length - pending.length} of ${rows.length} streams at ${target} current replicas`;
  return `${head}, ${done}; waiting on ${shown}`;
}

/** Asks `cluster.status` every `everyMs` and writes a progress line until stopped. */
export function watchScale(
  send: Send,
  target: number,
  write: (line: string) => void,
  everyMs = 5000,
): { stop(): void } {
  const started = Date.now();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    const line = await send("cluster.status", {}).then(
      (s) => scaleProgressText(s, target, Date.now() - started),
      (err: Error) => `cluster scale: ${Math.round((Date.now() - started) / 1000)} s, no status (${err.message})`,
    );
    if (stopped) return;
    write(line);
    timer = setTimeout(tick, everyMs);
  };
  timer = setTimeout(tick, everyMs);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
