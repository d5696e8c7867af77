// The agent asks membershipd what its node should run: `node.apps`, signed with the node's own key
// (the connection's `ask`), answered with NodeAppsResult. Throws on anything but that answer, so
// the reconciler keeps what runs and tries again on its next pass.
import { NodeAppsResult, type Reply } from "../../../schemas/mod.ts";
import { zodMessage } from "../../core/mod.ts";

export type Ask = (action: string, args: Record<string, unknown>) => Promise<Reply>;

export async function fetchNodeApps(ask: Ask, node: string): Promise<NodeAppsResult> {
  const reply = await ask("node.apps", { node });
  if (!reply.ok) throw new Error(`membershipd refused node.apps: ${reply.error.code}: ${reply.error.message}`);
  const parsed = NodeAppsResult.safeParse(reply.result);
  if (!parsed.success) throw new Error(`membershipd's node.apps answer is malformed: ${zodMessage(parsed.error)}`);
  if (parsed.data.node !== node) throw new Error(`membershipd answered node.apps for ${parsed.data.node}, not ${node}`);
  return parsed.data;
}
