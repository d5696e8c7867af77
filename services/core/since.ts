// Durations for the CLI and the agent. `--since 10m`: a duration back from now ("30s", "10m", "2h",
// "1d", "1h30m", "250ms") or an ISO 8601 time ("2024-05-01T12:00:00Z"). Pure: the clock is an argument.
import { z } from "zod";
import { domainError } from "./errors.ts";
import type { Result } from "./result.ts";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(?:\d+(?:ms|s|m|h|d))+$/;
const PART = /(\d+)(ms|s|m|h|d)/g;
/** Ten years: anything longer is a typo, and keeps the arithmetic exact. */
const MAX_MS = 3650 * UNIT_MS.d!;
const IsoWithZone = z.iso.datetime({ offset: true });

/** The cutoff in epoch ms, or E_BAD_REQUEST. */
export type SinceResult = Result<number>;

/** A duration like "10m" or "1h30m" in milliseconds, or null when the text is not one. */
export function parseDurationMs(text: string): number | null {
  const t = text.trim();
  if (!DURATION.test(t)) return null;
  let ms = 0;
  for (const [, n, unit] of t.matchAll(PART)) ms += Number(n) * UNIT_MS[unit!]!;
  return ms <= MAX_MS ? ms : null;
}

/** The epoch-ms cutoff `text` names: now minus a duration, or an absolute ISO time. */
export function parseSince(text: string, nowMs: number): SinceResult {
  const ms = parseDurationMs(text);
  if (ms !== null) return { ok: true, value: nowMs - ms };
  if (IsoWithZone.safeParse(text.trim()).success) return { ok: true, value: Date.parse(text.trim()) };
  const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text;
  return {
    ok: false,
    error: domainError(
      "E_BAD_REQUEST",
      `${JSON.stringify(shown)} is not a duration like 30s, 10m, 2h or 1d (up to 3650d), nor an ISO 8601 time with a zone`,
    ),
  };
}
