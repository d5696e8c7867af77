// An enrollment subject's request (join, wait announcement): size and nesting depth checked on the
// bytes before anything parses or walks them (services/core/json-limits.ts), then its schema; a
// failure is the reply to send as is.
import type { z } from "zod";
import type { Reply } from "../../schemas/mod.ts";
import { domainError, parseUntrustedJson } from "../core/mod.ts";
import { errorReply, zodMessage } from "./command-pipeline.ts";

const MAX_REQUEST_BYTES = 16 * 1024;

export function parseRequest<T>(raw: Uint8Array, schema: z.ZodType<T>): { value: T } | { reply: Reply } {
  const json = parseUntrustedJson(raw, { maxBytes: MAX_REQUEST_BYTES, what: "request" });
  if (!json.ok) return { reply: errorReply(json.error) };
  const r = schema.safeParse(json.value);
  return r.success
    ? { value: r.data }
    : { reply: errorReply(domainError("E_BAD_REQUEST", `malformed request: ${zodMessage(r.error)}`)) };
}
