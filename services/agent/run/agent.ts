// `unibus-agent run`: the node daemon. It starts the node's services first (they must run whether
// or not NATS is there), then connects with the node's own credentials and keeps reconnecting
// with jittered backoff for as long as it runs. Once connected it answers signed commands on its
// subjects, ships the services' logs and reports its events to membershipd; it guards its peers'
// key shares and, in vault mode, unlocks its own data key from them (services/agent/vault). A killed agent takes
// its services with it (bwrap --die-with-parent, setpriv --pdeathsig), so the next agent starts
// them afresh: never a second copy. The phases are AgentRuntime's (runtime.ts).
import type { AgentOptions, RunningAgent } from "./options.ts";
import { AgentRuntime } from "./runtime.ts";

export { AgentError, type AgentOptions, type AgentVaultOptions, type RunningAgent } from "./options.ts";
export { runDaemon } from "./daemon.ts";

export function startAgent(o: AgentOptions): Promise<RunningAgent> {
  return AgentRuntime.start(o);
}
