// An app's settings: its manifest carries a JSON Schema (type object) for them, read by zod's
// fromJSONSchema; what an operator sets (`KEY=VALUE` pairs) is checked against it before it is
// stored as desired state, so a node never receives settings its app did not declare.
import { z } from "zod";
import { AppSettings, type AppManifest } from "../../../schemas/mod.ts";
import { domainError, type DomainError } from "../errors.ts";

const SETTING_NAME = /^[a-z][a-z0-9_]{0,62}$/;
// Compiled once per manifest object: membershipd checks settings for every node of a plan.
const compiled = new WeakMap<object, z.ZodType | string>();

/**
 * Why `schema` cannot be an app's settings schema, or null when it can: it must be a JSON Schema of
 * type object that zod can read, naming only settings an app can be given (a-z 0-9 _).
 * Its depth and size are bounded by the manifest's schema.
 */
export function settingsSchemaProblem(schema: unknown): string | null {
  const c = compile(schema);
  return typeof c === "string" ? c : null;
}

function compile(schema: unknown): z.ZodType | string {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema))
    return "the settings schema must be a JSON Schema object";
  const known = compiled.get(schema);
  if (known) return known;
  const result = compileFresh(schema as Record<string, unknown>);
  compiled.set(schema, result);
  return result;
}

function compileFresh(schema: Record<string, unknown>): z.ZodType | string {
  if (schema.type !== "object") return 'the settings schema must have type "object"';
  const props = schema.properties;
  if (props !== undefined && (typeof props !== "object" || props === null || Array.isArray(props)))
    return "the settings schema's properties must be an object";
  const bad = Object.keys(props ?? {}).find((k) => !SETTING_NAME.test(k));
  if (bad !== undefined)
    return `the setting name ${JSON.stringify(bad)} is not 1-63 of a-z 0-9 _ starting with a letter`;
  try {
    // A registry of its own: an app's `$id` or metadata must not land in (or clash with) zod's global one.
    return z.fromJSONSchema(schema as z.core.JSONSchema.JSONSchema, { registry: z.registry() });
  } catch (e) {
    return `the settings schema cannot be read: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/**
 * The settings checked against the app's schema, with the schema's defaults filled in: or
 * E_APP_SETTINGS naming the first setting that is unknown, missing or wrong.
 */
export function checkSettings(manifest: AppManifest, settings: Record<string, unknown>): AppSettings | DomainError {
  const of = `${manifest.name} ${manifest.version}`;
  const schema = compile(manifest.settings);
  if (typeof schema === "string")
    return domainError("E_APP_SETTINGS", `${of} has no usable settings schema: ${schema}`);
  let parsed: ReturnType<typeof schema.safeParse>;
  try {
    parsed = schema.safeParse(settings);
  } catch (e) {
    return domainError("E_APP_SETTINGS", `the settings of ${of} cannot be checked: ${(e as Error).message}`);
  }
  if (!parsed.success) return domainError("E_APP_SETTINGS", issueSentence(of, settings, parsed.error.issues[0]!));
  const stored = AppSettings.safeParse(parsed.data);
  if (!stored.success) {
    const i = stored.error.issues[0]!;
    return domainError("E_APP_SETTINGS", `the settings of ${of}: ${i.path.join(".") || "(all)"}: ${i.message}`);
  }
  return stored.data;
}

function issueSentence(of: string, settings: Record<string, unknown>, i: z.core.$ZodIssue): string {
  if (i.code === "unrecognized_keys") return `${of} has no setting ${i.keys.map((k) => JSON.stringify(k)).join(", ")}`;
  const key = i.path.map(String).join(".");
  if (key === "") return `the settings of ${of}: ${i.message}`;
  if (i.path.length === 1 && !Object.hasOwn(settings, String(i.path[0])) && i.code === "invalid_type")
    return `${of} needs the setting ${key}`;
  return `setting ${key} of ${of}: ${i.message}`;
}

/**
 * `KEY=VALUE` pairs as the CLI's `--set` and `app config set` take them: VALUE is JSON when it
 * parses as JSON (8080, true, "quoted", [1,2]) and a string otherwise; a later pair of the same KEY wins.
 */
export function parseSettingAssignments(pairs: readonly string[]): Record<string, unknown> | DomainError {
  const out = new Map<string, unknown>();
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0)
      return domainError("E_BAD_REQUEST", `${JSON.stringify(pair)} is not KEY=VALUE (a setting's name, =, its value)`);
    out.set(pair.slice(0, eq), jsonOrString(pair.slice(eq + 1)));
  }
  // fromEntries defines own properties: a key named __proto__ stays a key.
  return Object.fromEntries(out);
}

function jsonOrString(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
