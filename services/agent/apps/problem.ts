// Why an app step failed: a registered code (services/core/errors.ts) and one sentence, as the
// AppFailed event and `status` carry them.
import type { Codes } from "../../core/mod.ts";

/**
 * The codes an app step fails with: the signature's and the tarball's (shared with releases),
 * the agent's own (too old, a permission this node cannot enforce, a name a local service holds,
 * services that did not come up), and NATS being away.
 */
export type AppCode = Codes<
  | "E_APP_INVALID"
  | "E_APP_UNSIGNED"
  | "E_APP_WRONG_KEY"
  | "E_APP_BAD_SIGNATURE"
  | "E_APP_UNENFORCEABLE"
  | "E_APP_NAME_TAKEN"
  | "E_APP_NOT_RUNNING"
  | "E_AGENT_TOO_OLD"
  | "E_RELEASE_NOT_FOUND"
  | "E_RELEASE_TAMPERED"
  | "E_RELEASE_UNSAFE"
  | "E_RELEASE_TOO_LARGE"
  | "E_SERVICE_CONFIG"
  | "E_UNAVAILABLE"
  | "E_INTERNAL"
>;

export interface AppProblem {
  readonly code: AppCode;
  readonly message: string;
}

/** Worth trying again on the next pass without a new desired state: the link or the store was away. */
export const retryable = (p: AppProblem) => p.code === "E_UNAVAILABLE" || p.code === "E_INTERNAL";
