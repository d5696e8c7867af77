// The help, built from the verb definitions and the global flags' help: nothing here names a verb.
import { GLOBAL_FLAG_HELP, TOP_LEVEL_FLAGS } from "./global-flags.ts";
import { verbName, type VerbInfo } from "./verb.ts";

const WIDTH = 120;
/** Where descriptions start: a usage this short gets its description on the same line. */
const TEXT_COLUMN = 39;

export const EXIT_CODES =
  "exit codes: 0 ok · 1 refused, failed, or differences found · 2 usage error · 3 server unreachable or unavailable (retry)";

/** `text` in lines of at most `width` characters (a longer word stands alone; "5 s" stays whole). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+(?!s\b)/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return line ? [...lines, line] : lines;
}

/** "  left   text…" with the text wrapped in its column, starting on the next line when `left` is long. */
function entry(left: string, text: string): string {
  const head = `  ${left}`;
  const body = wrap(text, WIDTH - TEXT_COLUMN);
  if (body.length === 0) return head;
  const indent = " ".repeat(TEXT_COLUMN);
  const first = head.length < TEXT_COLUMN - 1 ? [head.padEnd(TEXT_COLUMN) + body.shift()] : [head];
  return [...first, ...body.map((l) => indent + l)].join("\n");
}

/** A verb's words and usage for a line that starts `column` characters in, wrapped under its words when long. */
function synopsis(v: VerbInfo, column: number): string {
  const name = verbName(v);
  const [first = "", ...rest] = wrap(v.usage, WIDTH - column - name.length - 1);
  const indent = " ".repeat(column + name.length + 1);
  return [`${name} ${first}`.trimEnd(), ...rest.map((l) => indent + l)].join("\n");
}

function dryRunNote(v: VerbInfo): string {
  return v.dryRun === true ? "" : `--dry-run does not apply: ${verbName(v)} ${v.dryRun}`;
}

function globalFlagsHelp(): string {
  return (Object.keys(TOP_LEVEL_FLAGS) as (keyof typeof TOP_LEVEL_FLAGS)[])
    .map((name) => {
      const h = GLOBAL_FLAG_HELP[name];
      const short = "short" in TOP_LEVEL_FLAGS[name] ? `-${TOP_LEVEL_FLAGS[name].short}, ` : "";
      return entry(`${short}--${name}${h.value ? ` ${h.value}` : ""}${h.env ? ` [${h.env}]` : ""}`, h.text);
    })
    .join("\n");
}

/** `unibus --help`: every verb, then the global flags and the exit codes. */
export function usageText(verbs: readonly VerbInfo[]): string {
  return [
    "usage: unibus [global flags] <verb> [args]",
    "",
    "verbs:",
    ...verbs.map((v) => entry(synopsis(v, 2), v.help)),
    "",
    "global flags (env in brackets):",
    globalFlagsHelp(),
    "",
    EXIT_CODES,
  ].join("\n");
}

/** `unibus <noun> --help`: the verbs of one noun. */
export function nounHelp(noun: string, verbs: readonly VerbInfo[]): string {
  return [
    `usage: unibus [global flags] ${noun} <verb> [args]`,
    "",
    ...verbs.map((v) => entry(synopsis(v, 2), v.help)),
    "",
    "(unibus --help for the global flags)",
  ].join("\n");
}

/** `unibus <noun> <verb> --help`. */
export function verbHelp(v: VerbInfo): string {
  const about = [v.help, dryRunNote(v)].filter(Boolean).flatMap((t) => wrap(t, WIDTH - 2).map((l) => `  ${l}`));
  const prefix = "usage: unibus [global flags] ";
  return [
    prefix + synopsis(v, prefix.length),
    ...(about.length ? ["", ...about] : []),
    "",
    "(unibus --help for the global flags)",
    EXIT_CODES,
  ].join("\n");
}
