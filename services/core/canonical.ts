// Canonical JSON (RFC 8785, via the `canonicalize` library): the exact bytes every signature
// and hash covers, so any implementation can re-derive them from the parsed object.
import canonicalizeLib from "canonicalize";

const canonicalizeFn = canonicalizeLib as unknown as (v: unknown) => string | undefined;

export function canonicalJson(value: unknown): string {
  const out = canonicalizeFn(value);
  if (out === undefined) throw new TypeError("value has no canonical JSON form");
  return out;
}

/** An object's members as [key, canonical JSON of the value], for assembling with canonicalObject. */
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

/** The canonical JSON of members already in canonical order (sortedMembers). */
export function canonicalSortedObject(sorted: CanonicalMembers): string {
  let out = "{";
  for (let i = 0; i < sorted.length; i++) out += `${i ? "," : ""}${JSON.stringify(sorted[i]![0])}:${sorted[i]![1]}`;
  return `${out}}`;
}

/**
 * The canonical JSON of an object from its members' canonical values: what canonicalJson gives for
 * the whole object, without serializing again the values it already has. The write path builds an
 * event's signed bytes and then its hash (with `sig` added) from one serialization of its fields.
 */
export function canonicalObject(members: CanonicalMembers): string {
  return canonicalSortedObject(sortedMembers(members));
}

/**
 * canonicalObject of `sorted` (already in canonical order) plus `extra` (keys `sorted` lacks):
 * merged into their places instead of sorting everything again.
 */
export function canonicalObjectWith(sorted: CanonicalMembers, extra: CanonicalMembers): string {
  const more = sortedMembers(extra);
  const merged: CanonicalMembers = [];
  let i = 0;
  let j = 0;
  while (i < sorted.length || j < more.length) merged.push(j >= more.length || (i < sorted.length && byKey(sorted[i]!, more[j]!) < 0) ? sorted[i++]! : more[j++]!);
  return canonicalSortedObject(merged);
}
