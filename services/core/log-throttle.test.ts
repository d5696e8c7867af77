import { test } from "node:test";
import assert from "node:assert/strict";
import { throttledLog } from "./log-throttle.ts";

test("a repeated line is written once per quiet time, the next one saying how many were held back", () => {
  const lines: string[] = [];
  let t = 0;
  const note = throttledLog(
    (l) => lines.push(l),
    10_000,
    () => t,
  );
  for (let i = 0; i < 5; i++) note((more) => `refused (${more} more)`);
  t = 10_000;
  note((more) => `refused (${more} more)`);
  assert.deepEqual(lines, ["refused (0 more)", "refused (4 more)"]);
});
