// --limit N and --after KEY of the list verbs: membershipd's default page (1,000) when not given,
// starting after the cursor a page's `next` gave. A page always fits one reply; the text output
// says where the next one starts.
export const LIMIT_FLAG = { limit: { type: "string" }, after: { type: "string" } } as const;
export const PAGE_USAGE = "[--limit N] [--after KEY]";

export function limitArg(f: { limit?: string | undefined; after?: string | undefined }): {
  limit?: number;
  after?: string;
} {
  return { ...(f.limit ? { limit: Number(f.limit) } : {}), ...(f.after ? { after: f.after } : {}) };
}

/** A page's table, and the line that says how to get the next page when there is one. */
export function pageText(r: { items: unknown[]; total: number; next?: string | null }, text: string): string {
  return r.next ? `${text}\n(${r.items.length} of ${r.total}; the next page: --after ${r.next})` : text;
}
