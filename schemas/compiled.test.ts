// The compiled event schemas (compiled.ts) answer as the zod schemas they are compiled from: for
// every registered event type (enumerated from EventDataSchemas, so a new type is covered without
// touching this file), valid samples made from the schema itself are accepted by both with equal
// values, and a corpus of malformed events (each sample's fields removed, added, and replaced by
// wrong types, huge and unsafe numbers, oversized strings, NaN-like strings, wrong enum values,
// nested wrong shapes, non-objects) gets the same answer and the same issues from both. Checked
// twice: each data schema alone, and whole envelopes through the schema stage checkEvent runs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { z } from "zod";
import { AggregateKinds, EventDataSchemas, eventTypeInfo, type AggregateKind } from "./events.ts";
import { EventEnvelope } from "./envelopes.ts";
import { compiledEventData, compiledEventEnvelope } from "./compiled.ts";

type Def = { type: string; [k: string]: unknown };
const defOf = (s: z.ZodType) => s._zod.def as unknown as Def;

const registry: { kind: AggregateKind; type: string; schema: z.ZodType }[] = AggregateKinds.flatMap((kind) =>
  Object.entries(EventDataSchemas[kind]).map(([type, schema]) => ({ kind, type, schema: schema as z.ZodType })),
);

const key = (c: string) => c + "A".repeat(55);
/** Strings a leaf schema may accept; the first it does is its sample (a new format needs one here). */
const STRINGS = [
  "a",
  "a1",
  "1.2.3",
  "^1.2.3",
  "bin/app",
  "/usr/bin/app",
  "/dev/null",
  "SIGTERM",
  "10.0.0.1",
  "2025-01-01T00:00:00.000Z",
  key("U"),
  key("N"),
  key("A"),
  key("X"),
  "0".repeat(64),
  "0".repeat(32),
  "0123456789ABCDEF",
  ...[8, 16, 43, 86, 148].map((n) => "A".repeat(n)),
  `${"A".repeat(43)}=`,
  "host:51820",
  "",
];
const NUMBERS = [1, 0, 2, 5, 64, 1000, 1_700_000_000, 0.5, -1];

/** The first candidate `leaf` accepts; `salt` picks a later one, so array items can differ. */
function firstAccepted<T>(leaf: z.ZodType, candidates: T[], path: string, salt = 0): T {
  const ok = candidates.filter((c) => leaf.safeParse(c).success);
  if (!ok.length) throw new Error(`no sample value for ${path}: add one that ${JSON.stringify(leaf._zod.def)} accepts`);
  return ok[salt % ok.length]!;
}

interface Mode {
  /** Optional, defaulted and nullable fields present (with a value), records with an entry. */
  full: boolean;
  /** Which enum value and union option. */
  pick: number;
}

const ABSENT = Symbol("absent");

/** A value of `s`'s input type made from its definition (ABSENT: leave the field out). */
function sample(s: z.ZodType, m: Mode, path: string, salt = 0): unknown {
  const d = defOf(s);
  switch (d.type) {
    case "string": {
      const min = (d.checks as { _zod: { def: { check: string; minimum?: number } } }[] | undefined)?.find(
        (c) => c._zod.def.check === "min_length",
      )?._zod.def.minimum;
      return firstAccepted(s, min ? [...STRINGS, "a".repeat(min)] : STRINGS, path, salt);
    }
    case "number":
      return firstAccepted(s, NUMBERS, path, salt);
    case "boolean":
      return m.pick % 2 === 0;
    case "null":
      return null;
    case "unknown":
    case "any":
      return m.full ? { any: [1, "x", null] } : "x";
    case "literal":
      return (d.values as unknown[])[m.pick % (d.values as unknown[]).length];
    case "enum": {
      const values = Object.values(d.entries as Record<string, unknown>);
      return values[(m.pick + salt) % values.length];
    }
    case "optional":
    case "default":
    case "prefault":
      return m.full ? sample(d.innerType as z.ZodType, m, path, salt) : ABSENT;
    case "nullable":
      return m.full ? sample(d.innerType as z.ZodType, m, path, salt) : null;
    case "object": {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(d.shape as Record<string, z.ZodType>)) {
        const x = sample(v, m, `${path}.${k}`);
        if (x !== ABSENT) out[k] = x;
      }
      return out;
    }
    case "array": {
      const checks = (d.checks ?? []) as { _zod: { def: { check: string; minimum?: number } } }[];
      const min = checks.find((c) => c._zod.def.check === "min_length")?._zod.def.minimum ?? 0;
      const n = Math.max(min, m.full ? 1 : 0);
      return Array.from({ length: n }, (_v, i) => sample(d.element as z.ZodType, m, `${path}[${i}]`, i));
    }
    case "record": {
      if (!m.full) return {};
      const k = sample(d.keyType as z.ZodType, m, `${path}<key>`);
      return { [String(k)]: sample(d.valueType as z.ZodType, m, `${path}{}`) };
    }
    case "union": {
      const options = d.options as z.ZodType[];
      return sample(options[m.pick % options.length]!, m, `${path}|${m.pick % options.length}`, salt);
    }
    default:
      throw new Error(`the sample maker does not know zod type ${d.type} (at ${path}): teach it`);
  }
}

/** The enum values and union options a schema has at most: how many picks cover them. */
function widest(s: z.ZodType): number {
  const d = defOf(s);
  let n = 1;
  if (d.type === "enum") n = Object.keys(d.entries as object).length;
  if (d.type === "union") n = (d.options as unknown[]).length;
  if (d.type === "literal") n = (d.values as unknown[]).length;
  const kids: unknown[] = [d.innerType, d.element, d.keyType, d.valueType];
  if (d.type === "object") kids.push(...Object.values(d.shape as object));
  if (d.type === "union") kids.push(...(d.options as unknown[]));
  for (const k of kids) if (k) n = Math.max(n, widest(k as z.ZodType));
  return n;
}

function samplesOf(schema: z.ZodType, path: string): unknown[] {
  const out: unknown[] = [];
  for (let pick = 0; pick < widest(schema); pick++)
    for (const full of [false, true]) out.push(sample(schema, { full, pick }, path));
  const seen = new Set<string>();
  return out.filter((x) => !seen.has(JSON.stringify(x)) && !!seen.add(JSON.stringify(x)));
}

// What JSON can carry that no schema wants: JSON.parse's own oddities included (1e400 is Infinity,
// -0, an own "__proto__" key).
const huge = "x".repeat(70_000);
const WRONG: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  -0,
  2 ** 53,
  -(2 ** 53),
  1e308,
  JSON.parse("1e400"),
  "",
  "NaN",
  "Infinity",
  "-1",
  "1e3",
  "true",
  "null",
  huge,
  "😀".repeat(150), // 300 UTF-16 units, 150 code points: zod counts code points, as JSON Schema does
  "😀".repeat(201),
  "a\u0000",
  "a\n",
  {},
  [],
  [null],
  { a: 1 },
  JSON.parse('{"__proto__": {"x": 1}}'),
];

/** Each value beside `v` that is not `v`: its variants by type first, then every wrong value. */
function variants(v: unknown): unknown[] {
  const out: unknown[] = [];
  if (typeof v === "string")
    out.push(
      v.toUpperCase(),
      `0${v}`,
      `${v} `,
      ` ${v}`,
      `${v}x`,
      v.slice(1),
      v.repeat(5_000),
      `${v}\n`,
      Number(v) || 7,
    );
  if (typeof v === "number") out.push(v + 0.5, -v - 1, v * 1e6, String(v), 2 ** 53 + 2);
  if (Array.isArray(v))
    out.push(
      [...v, ...v],
      [...v, 123],
      Array.from({ length: 2_000 }, () => v[0] ?? "x"),
      {},
    );
  if (v && typeof v === "object" && !Array.isArray(v)) out.push(Object.values(v));
  return [...out, ...WRONG];
}

/** The malformed corpus of one value: every node replaced, every object's keys removed and added. */
function* mutations(v: unknown, depth = 0): Generator<unknown> {
  for (const w of variants(v)) yield w;
  if (depth > 6 || !v || typeof v !== "object") return;
  if (Array.isArray(v)) {
    for (let i = 0; i < Math.min(v.length, 3); i++)
      for (const w of mutations(v[i], depth + 1)) yield v.map((x, j) => (j === i ? w : x));
    return;
  }
  const o = v as Record<string, unknown>;
  yield { ...o, extra: 1 };
  yield { ...o, [Object.keys(o)[0] ?? "a"]: undefined };
  yield { ...JSON.parse('{"__proto__": {"polluted": true}}'), ...o };
  yield Object.assign(JSON.parse('{"__proto__": 1}'), o);
  for (const k of Object.keys(o)) {
    const { [k]: _gone, ...rest } = o;
    yield rest;
    yield { ...rest, [`${k}_`]: o[k] };
    for (const w of mutations(o[k], depth + 1)) yield { ...o, [k]: w };
  }
}

/** The same answer from both: success, the value (key order included) or the issues. */
function agree(original: z.ZodType, compiled: z.ZodType, input: unknown, what: string): boolean {
  const a = original.safeParse(input);
  const b = compiled.safeParse(input);
  assert.equal(b.success, a.success, `${what}: zod says ${a.success}, compiled ${b.success}`);
  if (a.success) {
    assert.deepStrictEqual(b.data, a.data, what);
    assert.equal(JSON.stringify(b.data), JSON.stringify(a.data), `${what}: key order`);
  } else assert.deepStrictEqual(b.error!.issues, a.error.issues, what);
  return a.success;
}

const show = (x: unknown) => JSON.stringify(x)?.slice(0, 160);

test("the registry has the event types the test walks, each compiled", () => {
  assert.ok(registry.length >= 60, `only ${registry.length} event types`);
  for (const { kind, type, schema } of registry) {
    assert.equal(eventTypeInfo(type)?.kind, kind, type);
    assert.ok(compiledEventData(type), type);
    assert.notEqual(compiledEventData(type), schema, `${type} is compiled (a clone), not the schema itself`);
  }
  assert.equal(compiledEventData("NoSuchEvent"), undefined);
  assert.equal(compiledEventData("__proto__"), undefined);
  // The envelope is what every event pays for: it must compile whole, with no part left to the runtime.
  assert.doesNotThrow(() => z.compile(EventEnvelope, { strict: true }));
});

for (const { type, schema } of registry) {
  test(`${type}: valid samples and the malformed corpus get zod's answers from the compiled schema`, () => {
    const compiled = compiledEventData(type)!;
    const samples = samplesOf(schema, type);
    const valid = samples.filter((s) => agree(schema, compiled, s, `${type} sample ${show(s)}`));
    assert.ok(valid.length > 0, `no sample of ${type} is valid: ${samples.map(show).join(" | ")}`);
    let rejected = 0;
    let n = 0;
    for (const s of valid)
      for (const bad of mutations(s)) {
        n++;
        if (!agree(schema, compiled, bad, `${type} corpus ${show(bad)}`)) rejected++;
      }
    assert.ok(rejected > n / 2, `${type}: only ${rejected} of ${n} mutations rejected`);
  });
}

// checkEvent's schema stage (services/core/event-check.ts) with either set of schemas.
type Stage = { ok: true; env: unknown } | { ok: false; at: string; issues?: unknown };
function stage(envelope: z.ZodType, dataOf: (type: string) => z.ZodType | undefined, json: unknown): Stage {
  const env = envelope.safeParse(json);
  if (!env.success) return { ok: false, at: "envelope", issues: env.error.issues };
  const e = env.data as { type: string; kind: string; data: unknown };
  if (eventTypeInfo(e.type)?.kind !== e.kind) return { ok: false, at: "type" };
  const data = dataOf(e.type)!.safeParse(e.data);
  return data.success ? { ok: true, env: e } : { ok: false, at: "data", issues: data.error.issues };
}

const envelopeOf = (kind: string, type: string, data: unknown, batch = false) => ({
  v: 1,
  id: "c1:0",
  type,
  kind,
  aggregate: "a1",
  ts: "2025-01-01T00:00:00.000Z",
  actor: { id: "membershipd", key: key("U") },
  signer: key("N"),
  causation: "c1",
  correlation: null,
  prev: batch ? "0".repeat(64) : null,
  data,
  ...(batch ? { batch: { i: 1, n: 3, path: ["A".repeat(43), "B".repeat(43)] } } : {}),
  sig: "A".repeat(86),
});

test("whole envelopes of every event type: the schema stage answers alike, values in zod's key order", () => {
  const envelope = compiledEventEnvelope();
  let rejected = 0;
  let n = 0;
  for (const { kind, type, schema } of registry) {
    const valid = samplesOf(schema, type).filter((s) => schema.safeParse(s).success);
    for (const [i, data] of valid.entries()) {
      const env = envelopeOf(kind, type, data, i % 2 === 1);
      const corpus = i === 0 ? [env, ...mutations(env)] : [env];
      for (const input of corpus) {
        n++;
        // What the hot path sees: the JSON text parsed, as stored bytes are.
        const json = JSON.parse(JSON.stringify(input) ?? "null");
        const a = stage(EventEnvelope, (t) => eventTypeInfo(t)?.schema, json);
        const b = stage(envelope, compiledEventData, json);
        assert.deepStrictEqual(b, a, `${type} ${show(input)}`);
        if (a.ok) assert.equal(JSON.stringify(b.ok && b.env), JSON.stringify(a.env), `${type}: key order`);
        else rejected++;
      }
      assert.ok(stage(envelope, compiledEventData, env).ok, `${type} sample ${show(env)}`);
    }
  }
  assert.ok(rejected > n / 2, `only ${rejected} of ${n} envelopes rejected`);
});

test("what JSON Schema cannot say is still said: a batch proof's i must be below n, an event's kind must be its type's", () => {
  const good = envelopeOf("room", "RoomCreated", { room: "r1", subject: "s", created_by: "a1" }, true);
  const cases: [string, unknown][] = [
    ["i = n", { ...good, batch: { ...good.batch!, i: 3 } }],
    ["i > n", { ...good, batch: { ...good.batch!, i: 9 } }],
    ["kind not the type's", { ...good, kind: "user" }],
    ["unknown type", { ...good, type: "RoomExploded" }],
    ["data of another type", { ...good, data: { handle: "a", reason: "" } }],
    ["not an object", []],
    ["null", null],
  ];
  for (const [what, json] of cases) {
    const a = stage(EventEnvelope, (t) => eventTypeInfo(t)?.schema, json);
    assert.equal(a.ok, false, what);
    assert.deepStrictEqual(stage(compiledEventEnvelope(), compiledEventData, json), a, what);
  }
  assert.ok(stage(compiledEventEnvelope(), compiledEventData, good).ok);
});
