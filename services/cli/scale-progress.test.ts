import { test } from "node:test";
import assert from "node:assert/strict";
import { scaleProgressText, watchScale } from "./scale-progress.ts";

const follower = (name: string, over: Partial<{ current: boolean; offline: boolean; lag: number }> = {}) => ({
  name,
  current: true,
  offline: false,
  lag: 0,
  ...over,
});
const row = (stream: string, replicas: number, followers: ReturnType<typeof follower>[]) => ({
  stream,
  replicas,
  leader: "n1",
  followers,
});

test("the progress line counts streams at the target and names what the others wait on", () => {
  const status = {
    streams: [
      row("UNIBUS_EVENTS", 3, [follower("n2"), follower("n3")]),
      row("KV_UNIBUS_nodes", 3, [follower("n2", { current: false, lag: 31 }), follower("n3", { offline: true })]),
      row("KV_UNIBUS_rooms", 3, [follower("n2")]),
      row("KV_UNIBUS_users", 1, []),
      row("UNIBUS_LOGS", 1, []),
      row("OBJ_UNIBUS_releases", 1, []),
    ],
  };
  assert.equal(
    scaleProgressText(status, 3, 12_400),
    "cluster scale: 12 s, 1 of 6 streams at 3 current replicas; waiting on KV_UNIBUS_nodes (n2 lag 31, n3 offline), " +
      "KV_UNIBUS_rooms (1 replica not placed yet), KV_UNIBUS_users (R1), +2 more",
  );
  assert.equal(
    scaleProgressText({ streams: [row("UNIBUS_EVENTS", 3, [follower("n2"), follower("n3")])] }, 3, 40_000),
    "cluster scale: 40 s, all 1 streams at 3 current replicas; checking the copies",
  );
  assert.equal(scaleProgressText({ nope: 1 }, 3, 1000), "cluster scale: 1 s, status unreadable");
});

test("watchScale writes a line per status until stopped, and says when a status fails", async () => {
  const lines: string[] = [];
  let calls = 0;
  const send = async (action: string) => {
    assert.equal(action, "cluster.status");
    if (++calls === 2) throw new Error("no answer within 5 s");
    return { streams: [row("UNIBUS_EVENTS", 1, [])] };
  };
  const w = watchScale(send, 3, (l) => lines.push(l), 20);
  while (lines.length < 3) await new Promise((r) => setTimeout(r, 10));
  w.stop();
  const seen = lines.length;
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(lines.length, seen, "nothing is written after stop()");
  assert.match(
    lines[0]!,
    /^cluster scale: \d+ s, 0 of 1 streams at 3 current replicas; waiting on UNIBUS_EVENTS \(R1\)$/,
  );
  assert.match(lines[1]!, /^cluster scale: \d+ s, no status \(no answer within 5 s\)$/);
});
