// Limits on untrusted JSON, checked on the bytes before anything parses or walks them: everything
// after JSON.parse (zod, canonical JSON for a fingerprint or a signature) recurses once per level of
// nesting, so a deep enough document would overflow the stack before the sender is known.
import { domainError } from "./errors.ts";
import type { Result } from "./result.ts";

/** Arrays and objects inside one another; no legitimate request comes near it. */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/**
 * The deepest nesting of `[` and `{` in JSON bytes, outside strings, stopping as soon as it passes
 * `limit`. One pass, no allocation. Bytes of a multi-byte UTF-8 character are all ≥ 0x80, so they
 * never look like a bracket or a quote. Unbalanced input is left for JSON.parse to refuse.
 */
export function jsonDepth(raw: Uint8Array, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i]!;
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) {
      inString = true;
    } else if (b === OPEN_ARRAY || b === OPEN_OBJECT) {
      if (++depth > max && (max = depth) > limit) return max;
    } else if (b === CLOSE_ARRAY || b === CLOSE_OBJECT) {
      depth--;
    }
  }
  return max;
}

export type UntrustedJson = Result<unknown>;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Size, then nesting depth (on the bytes), then UTF-8 and JSON.parse: the only way untrusted bytes
 * become a value to walk. `what` names the input in the refusal ("command", "request").
 */
export function parseUntrustedJson(
  raw: Uint8Array,
  o: { maxBytes: number; maxDepth?: number; what: string },
): UntrustedJson {
  if (raw.length > o.maxBytes)
    return {
      ok: false,
      error: domainError("E_TOO_LARGE", `${o.what} is ${raw.length} bytes; the limit is ${o.maxBytes}`),
    };
  const maxDepth = o.maxDepth ?? MAX_JSON_DEPTH;
  if (jsonDepth(raw, maxDepth) > maxDepth) {
    return {
      ok: false,
      error: domainError("E_TOO_DEEP", `${o.what} nests arrays and objects more than ${maxDepth} levels deep`),
    };
  }
  try {
    return { ok: true, value: JSON.parse(utf8.decode(raw)) };
  } catch {
    return { ok: false, error: domainError("E_BAD_JSON", `${o.what} is not valid UTF-8 JSON`) };
  }
}
