// listAll follows `next` until the last page: `node command all` once reached only the first page
// (about 900 nodes with their reports) of a larger fleet, with a warning on stderr.
import { test } from "node:test";
import assert from "node:assert/strict";
import { pageOf } from "../membershipd/page.ts";
import { listAll } from "./list-all.ts";

test("every page of a list is read, in order, each asked after the last one's cursor", async () => {
  const records = Array.from({ length: 2500 }, (_, i) => ({
    node: `n-${String(i).padStart(5, "0")}`,
    pad: "x".repeat(400),
  }));
  const asked: (string | undefined)[] = [];
  const send = async (_action: string, args: Record<string, unknown>) => {
    asked.push(args.after as string | undefined);
    return pageOf(records, (r) => r.node, Number(args.limit), args.after as string | undefined);
  };
  const all = await listAll(send, "node.list");
  assert.ok(all !== null && typeof all === "object" && "items" in all);
  assert.equal(all.total, 2500);
  assert.deepEqual(
    all.items.map((r) => (r as { node: string }).node),
    records.map((r) => r.node),
  );
  assert.ok(asked.length > 1, "the records took more than one page");
  assert.equal(asked[0], undefined);
});
