// Tables for people, JSON for scripts, and errors as one sentence with a documented exit code.
import { exitCodeOf, type ErrorCode } from "../core/mod.ts";

export class CliError extends Error {
  readonly code: string;
  /** A registered code only (services/core/errors.ts); the exit code is the code's unless given. */
  constructor(
    code: ErrorCode,
    message: string,
    readonly exitCode: number = exitCodeOf(code),
  ) {
    super(message);
    this.code = code;
  }

  /** A server's or agent's answer as it came: its code is data, perhaps one a newer peer added. */
  static fromAnswer(code: string, message: string, exitCode: number = exitCodeOf(code)): CliError {
    return Object.assign(new CliError("E_INTERNAL", message, exitCode), { code });
  }
}

export const EXIT = { ok: 0, failed: 1, usage: 2, unavailable: 3 } as const;

export function table(rows: Record<string, unknown>[], columns: string[]): string {
  if (rows.length === 0) return "(none)";
  const cell = (v: unknown) =>
    v === null || v === undefined ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v);
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join(
    "\n",
  );
}

export function print(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write((json ? JSON.stringify(value, null, 2) : human()) + "\n");
}

/** A progress line on stderr, rewritten in place on a terminal and every few seconds otherwise. */
export function progress(label: string): {
  update(done: number, total: number): void;
  note(text: string): void;
  end(): void;
} {
  const tty = process.stderr.isTTY;
  let last = 0;
  const started = Date.now();
  return {
    update(done, total) {
      const now = Date.now();
      if (now - last < (tty ? 200 : 3000)) return;
      last = now;
      const rate = Math.round(done / Math.max(0.001, (now - started) / 1000));
      const text = `${label}: ${done}/${total} events (${rate}/s)`;
      process.stderr.write(tty ? `\r${text}` : `${text}\n`);
    },
    /** A line of its own among the updates: something the reader did that the count does not show. */
    note(text) {
      process.stderr.write(`${tty && last ? "\n" : ""}${label}: ${text}\n`);
      last = 0;
    },
    end() {
      if (tty && last) process.stderr.write("\n");
    },
  };
}

export function usageError(message: string): never {
  throw new CliError("E_USAGE", `${message} (see unibus --help)`, EXIT.usage);
}

export function need(args: string[], n: number, what: string): string[] {
  if (args.length !== n) usageError(`expected ${what}`);
  return args;
}

/** 45s, 3m 12s, 2h 5m, 3d 4h: two units at most, for a table cell. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const parts: [number, string][] = [
    [Math.floor(s / 86400), "d"],
    [Math.floor(s / 3600) % 24, "h"],
    [Math.floor(s / 60) % 60, "m"],
    [s % 60, "s"],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  if (first === -1) return "0s";
  return parts
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, u]) => `${n}${u}`)
    .join(" ");
}

/** "3m ago" for an ISO time; "-" when there is none or it does not parse. */
export function ago(iso: string | null | undefined, nowMs = Date.now()): string {
  const t = iso ? Date.parse(iso) : NaN;
  if (Number.isNaN(t)) return "-";
  return t > nowMs ? `in ${humanDuration(t - nowMs)}` : `${humanDuration(nowMs - t)} ago`;
}

/** A timeout as given: "5s", "1m 30s", or "250 ms" when it is not whole seconds. */
export function durationText(ms: number): string {
  return ms < 1000 || ms % 1000 !== 0 ? `${ms} ms` : humanDuration(ms);
}

/** Text from a node goes to a terminal as text, never as control sequences or a forged line of its own. */
export function printable(text: string): string {
  return text.replace(
    /[\u0000-\u0008\u000a-\u001f\u007f\u009b]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}
