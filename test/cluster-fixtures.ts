// The shipped deploy/cluster/cluster.env, and copies of it filled in, for the cluster.env tests.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");

export const SHIPPED_ENV = join(ROOT, "deploy/cluster/cluster.env");

/** The shipped cluster.env with every placeholder filled in. */
export function filledEnv(over: Record<string, string> = {}): string {
  const values: Record<string, string> = {
    "<cluster-name>": "prod",
    "<cluster-user>": "unibus",
    "<kv-replicas>": "3",
    "<ssh-user>": "deploy",
    "<wg-or-public>": "wg",
    ...Object.fromEntries(
      [1, 2, 3].flatMap((i) => [
        [`<node${i}-name>`, `n${i}`],
        [`<node${i}-ssh-host>`, `n${i}.example.net`],
        [`<node${i}-public-ip>`, `203.0.113.${i}`],
        [`<node${i}-wg-ip>`, `10.0.0.${i}`],
      ]),
    ),
    ...over,
  };
  return readFileSync(SHIPPED_ENV, "utf8").replace(/<[^<>]+>/g, (p) => values[p] ?? p);
}
