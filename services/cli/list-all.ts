// Every record of a list action, page after page: one page holds what fits half a NATS payload
// (services/membershipd/page.ts), about 900 nodes with their reports, so a fleet's list is several.
import { DRY_RUN } from "./dry-run.ts";
import type { Send } from "./session.ts";

/** Safety bound on pages: a cursor that never ends would be membershipd's bug, not a reason to loop. */
const MAX_PAGES = 10_000;

/** `{ items, total }` of every page of `action`, or DRY_RUN when the CLI only shows what it would send. */
export async function listAll(
  send: Send,
  action: string,
  args: Record<string, unknown> = {},
): Promise<{ items: unknown[]; total: number } | typeof DRY_RUN> {
  const items: unknown[] = [];
  let after: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const r = await send(action, { limit: 10_000, ...args, ...(after ? { after } : {}) });
    if (r === DRY_RUN) return DRY_RUN;
    items.push(...r.items);
    if (!r.next) return { items, total: r.total };
    after = r.next;
  }
  throw new Error(`${action}: more than ${MAX_PAGES} pages`);
}
