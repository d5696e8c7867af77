// Canonical JSON (RFC 8785, via the `canonicalize` library): the exact bytes every signature
// and hash covers, so any implementation can re-derive them from the parsed object.
import canonicalizeLib from "canonicalize";

const canonicalizeFn = canonicalizeLib as unknown as (v: unknown) => string | undefined;

export function canonicalJson(value: unknown): string {
  const out = canonicalizeFn(value);
  if (out === undefined) throw new TypeError("value has no canonical JSON form");
  return out;
}

/** An object's members as [key, canonical JSON of the value], for assembling an object's canonical JSON piece by piece. */
export type CanonicalMembers = [string, string][];

export function canonicalMembers(value: Record<string, unknown>): CanonicalMembers {
  const out: CanonicalMembers = [];
  // A string, finite number, boolean or null serializes in RFC 8785 exactly as JSON.stringify does
  // (the library itself hands them to JSON.stringify); only objects and arrays need the library.
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    out.push([k, v === null || typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v)) ? JSON.stringify(v) : canonicalJson(v)]);
  }
  return out;
}

const byKey = ([a]: [string, string], [b]: [string, string]) => (a < b ? -1 : a > b ? 1 : 0);

/** Members in canonical order (keys sorted by UTF-16 code units, as RFC 8785 and `canonicalize` sort them). */
export function sortedMembers(members: CanonicalMembers): CanonicalMembers {
  return members.slice().sort(byKey);
}
