// At the agent's start, before any connection: the installed apps' services join the supervisor
// beside the local services, so that they start with them. Each manifest is checked again against
// the node's trusted keys (a key the operator removed stops its apps); an app that fails any check
// is logged and left out, and the next reconcile installs it again or reports why not.
import type { Supervisor } from "../supervisor/mod.ts";
import { admitApp, type AdmitContext } from "./admit.ts";
import { loadAppsState } from "./state.ts";

/** The names of the services added; nothing is started here (the supervisor's startAll does). */
export function restoreApps(
  supervisor: Pick<Supervisor, "add">,
  ctx: AdmitContext,
  log: (line: string) => void,
): string[] {
  let installed;
  try {
    installed = Object.values(loadAppsState(ctx.layout.state).installed);
  } catch (err) {
    log(`apps: ${(err as Error).message}; no app is started until a reconcile`);
    return [];
  }
  const added: string[] = [];
  for (const a of installed) {
    const admitted = admitApp(a, ctx);
    if (!admitted.ok) {
      log(`apps: ${a.app} ${a.version} is not started [${admitted.error.code}]: ${admitted.error.message}`);
      continue;
    }
    const r = supervisor.add(admitted.configs);
    if (!r.ok) {
      log(`apps: ${a.app} ${a.version} is not started [${r.error.code}]: ${r.error.message}`);
      continue;
    }
    added.push(...admitted.configs.map((c) => c.name));
  }
  return added;
}
