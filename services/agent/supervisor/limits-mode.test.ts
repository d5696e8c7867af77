// Which limits an app can get: a writable cgroup v2 with memory, pids and cpu, else rlimits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type CgroupView, limitsMode, limitsModeOf } from "./limits-mode.ts";

const UNIFIED = "41 31 0:38 / /sys/fs/cgroup rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate";
const HYBRID = [
  "35 31 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
].join("\n");

function view(more: Partial<CgroupView> & { offered?: Record<string, string[]> }): CgroupView {
  return {
    mountinfo: UNIFIED,
    procCgroup: "0::/system.slice/unibus-agent.service\n",
    controllers: (dir) => more.offered?.[dir] ?? null,
    writable: () => true,
    ...more,
  };
}

test("cgroup only where the agent's own cgroup offers memory, pids and cpu and may be written", () => {
  const own = "/sys/fs/cgroup/system.slice/unibus-agent.service";
  const all = { [own]: ["cpuset", "cpu", "io", "memory", "pids"] };
  assert.equal(limitsModeOf(view({ offered: all })), "cgroup");
  assert.equal(limitsModeOf(view({ offered: all, writable: () => false })), "rlimit", "read-only");
  assert.equal(limitsModeOf(view({ offered: { [own]: ["cpu", "memory"] } })), "rlimit", "no pids");
  assert.equal(limitsModeOf(view({ offered: all, mountinfo: "" })), "rlimit", "no cgroup2 mounted");
  assert.equal(limitsModeOf(view({ offered: all, procCgroup: "4:memory:/x\n" })), "rlimit", "v1 only");
  // A hybrid host (this one): cgroup2 at unified/, its controllers all taken by the v1 hierarchies.
  assert.equal(
    limitsModeOf(
      view({
        mountinfo: HYBRID,
        procCgroup: "4:memory:/x\n0::/\n",
        offered: { "/sys/fs/cgroup/unified": ["hugetlb"] },
      }),
    ),
    "rlimit",
  );
  assert.equal(
    limitsModeOf(
      view({
        mountinfo: HYBRID,
        procCgroup: "0::/\n",
        offered: { "/sys/fs/cgroup/unified": ["memory", "pids", "cpu"] },
      }),
    ),
    "cgroup",
  );
  assert.ok(["cgroup", "rlimit"].includes(limitsMode()), "this host reads as one of the two");
});
