// Canonical JSON (RFC 8785, via the `canonicalize` library): the exact bytes every signature
// and hash covers, so any implementation can re-derive them from the parsed object.
import canonicalizeLib from "canonicalize";

const canonicalizeFn = canonicalizeLib as unknown as (v: unknown) => string | undefined;

export function canonicalJson(value: unknown): string {
  const out = canonicalizeFn(value);
  if (out === undefined) throw new TypeError("value has no canonical JSON form");
  return out;
}
