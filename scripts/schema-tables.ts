// Tables of a zod schema's fields for the generated docs, read from its JSON Schema (the full
// JSON Schemas are in schemas/json/).
import { z } from "zod";

export function jsonSchema(schema: z.ZodType): any {
  return z.toJSONSchema(schema, { io: "input", unrepresentable: "any" });
}

export function describeType(p: any): string {
  if (p.const !== undefined) return `\`${JSON.stringify(p.const)}\``;
  if (p.enum) return p.enum.map((v: unknown) => `\`${v}\``).join(" \\| ");
  if (p.anyOf) return p.anyOf.map(describeType).join(" \\| ");
  const bits = [p.type ?? "any"];
  if (p.format) bits.push(p.format);
  else if (p.pattern) bits.push(`\`${p.pattern.replace(/\|/g, "\\|")}\``);
  if (p.minLength !== undefined || p.maxLength !== undefined)
    bits.push(`length ${p.minLength ?? 0}..${p.maxLength ?? "∞"}`);
  if (p.minimum !== undefined || p.maximum !== undefined) bits.push(`${p.minimum ?? "-∞"}..${p.maximum ?? "∞"}`);
  return bits.join(", ");
}

/** A field table for people; the full JSON Schemas are in schemas/json/. */
export function schemaBlock(schema: z.ZodType): string {
  const js = jsonSchema(schema);
  const required = new Set<string>(js.required ?? []);
  const rows = Object.entries(js.properties ?? {}).map(
    ([name, p]: [string, any]) =>
      `| \`${name}\` | ${describeType(p)} | ${required.has(name) ? "yes" : `no${p.default !== undefined ? ` (default \`${JSON.stringify(p.default)}\`)` : ""}`} |`,
  );
  return ["| field | type | required |", "|---|---|---|", ...rows, ""].join("\n") + "\n";
}
