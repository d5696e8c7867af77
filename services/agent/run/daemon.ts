// `unibus-agent run` in a process: the agent until it stops, stopped by SIGTERM or SIGINT.
import type { AgentOptions, RunningAgent } from "./options.ts";
import { AgentRuntime } from "./runtime.ts";

/** Resolves with the process's exit code once the agent has stopped (RunningAgent.done). */
export async function runDaemon(o: AgentOptions): Promise<number> {
  // The handler is in place before the first service starts: Node's default would kill the agent
  // at once: its services die with it, without their stop grace, and the exit code is lost.
  let agent: RunningAgent | null = null;
  let stopAsked = false;
  const stop = () => {
    stopAsked = true;
    void agent?.stop();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  agent = await AgentRuntime.start(o);
  if (stopAsked) void agent.stop();
  else
    o.log(
      `running as ${agent.node}: ${
        agent.supervisor
          .status()
          .map((s) => `${s.name} ${s.state}`)
          .join(", ") || "no services"
      }`,
    );
  return await agent.done;
}
