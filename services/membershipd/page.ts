// One page of a list answer: the records after the cursor, at most `limit` and no more than fit
// PAGE_BYTES of JSON (so a page always fits one reply), `total` counting every record, and `next`,
// the cursor of the page after this one (null on the last). Records come sorted by their cursor.

/** Half the server's default 1 MiB payload limit. */
const PAGE_BYTES = 512 * 1024;

export interface Page<R> {
  items: R[];
  total: number;
  next: string | null;
}

export function pageOf<R>(sorted: readonly R[], cursor: (r: R) => string, limit: number, after?: string): Page<R> {
  const rest = after === undefined ? sorted : sorted.filter((r) => cursor(r).localeCompare(after) > 0);
  const items: R[] = [];
  let bytes = 0;
  for (const r of rest) {
    bytes += JSON.stringify(r).length + 1;
    if (items.length >= limit || (items.length > 0 && bytes > PAGE_BYTES)) break;
    items.push(r);
  }
  const more = items.length < rest.length;
  return { items, total: sorted.length, next: more ? cursor(items[items.length - 1]!) : null };
}

/** `records` sorted by their cursor, as pageOf takes them. */
export function byCursor<R>(records: R[], cursor: (r: R) => string): R[] {
  return records.sort((a, b) => cursor(a).localeCompare(cursor(b)));
}
