// The hand-assembled canonical forms agree with the canonicalize library (RFC 8785) byte for byte.
import { test } from "node:test";
import assert from "node:assert/strict";
import { seededRandom } from "../../../test/harness.ts";
import canonicalizeLibModule from "canonicalize";
import { canonicalJson, canonicalMembers, sortedMembers } from "./canonical.ts";

const canonicalizeLib = canonicalizeLibModule as unknown as (v: unknown) => string;

const KEYS = ["a", "B", "aa", "ä", "z", "_", "id", "sig", "batch", "10", "9", "é", "\u{1F600}", "Z"];

function randomObject(rand: () => number, keys: string[]): Record<string, unknown> {
  const values = [
    null,
    true,
    0,
    -1.5,
    1e21,
    "x",
    'quote " and \\ and \n',
    { b: 1, a: [2, { d: null, c: "é" }] },
    [3, 2, 1],
  ];
  return Object.fromEntries(
    keys.filter(() => rand() < 0.6).map((k) => [k, values[Math.floor(rand() * values.length)]]),
  );
}

function randomObjectFor(rand: () => number): Record<string, unknown> {
  return randomObject(
    rand,
    KEYS.slice().sort(() => rand() - 0.5),
  );
}

test("an object's members, serialized and sorted, joined, are canonicalJson's bytes", () => {
  const rand = seededRandom(7);
  for (let n = 0; n < 500; n++) {
    const o = randomObjectFor(rand);
    const joined = `{${sortedMembers(canonicalMembers(o))
      .map(([k, v]) => `${JSON.stringify(k)}:${v}`)
      .join(",")}}`;
    assert.equal(joined, canonicalJson(o));
  }
});

test("flat objects written out directly equal the canonicalize library's bytes, and every other shape still goes through it", () => {
  const rand = seededRandom(11);
  const flatValues = [
    null,
    true,
    false,
    0,
    -0,
    -1.5,
    1e21,
    5e-324,
    "",
    "x",
    'quote " and \\ and \n',
    "\u2028 \ud800 lone",
    "é \u{1F600}",
    undefined,
  ];
  for (let n = 0; n < 2000; n++) {
    const keys = KEYS.slice()
      .sort(() => rand() - 0.5)
      .filter(() => rand() < 0.6);
    const o = Object.fromEntries(keys.map((k) => [k, flatValues[Math.floor(rand() * flatValues.length)]]));
    assert.equal(canonicalJson(o), canonicalizeLib(o), JSON.stringify(o));
  }
  for (const odd of [
    { a: 1, toJSON: () => ({ z: 1 }) },
    Object.assign(Object.create(null), { b: 1, a: 2 }),
    { a: Symbol("s"), b: 1 },
    { b: [1], a: { d: 1, c: 2 } },
    new Date(0),
    [{ b: 1, a: 2 }],
  ]) {
    assert.equal(canonicalJson(odd), canonicalizeLib(odd));
  }
  assert.throws(() => canonicalJson({ a: NaN }));
  assert.throws(() => canonicalJson({ a: Infinity }));
});
