// The co-located agent's WireGuard mesh, as its --mesh-state file says (services/agent/mesh/
// state-file.ts): /healthz shows the interface and each peer's last handshake under "mesh". Shown,
// never a problem: a deploy waits for "ok" before it starts the agent that writes the file. Parsed
// again only when the file changed; bounded before it is parsed.
import { readFileSync, statSync } from "node:fs";
import { z } from "zod";
import { MeshInfo } from "../../schemas/mod.ts";
import { zodMessage } from "../core/mod.ts";

const MAX_BYTES = 1024 * 1024;
/** The file: MeshInfo and when the agent wrote it. */
const MeshState = MeshInfo.extend({ written_at: z.string() });

export type AgentMesh =
  | (MeshInfo & { written_at: string; state_age_s: number })
  | { problem: string; state_age_s: null };

export function agentMeshReader(file: string): (now?: number) => AgentMesh {
  let cached: { mtimeMs: number; size: number; info: MeshInfo & { written_at: string } } | null = null;
  return (now = Date.now()) => {
    try {
      const st = statSync(file);
      if (st.size > MAX_BYTES) return { problem: `${file} is over ${MAX_BYTES} bytes`, state_age_s: null };
      if (!cached || cached.mtimeMs !== st.mtimeMs || cached.size !== st.size) {
        const r = MeshState.safeParse(JSON.parse(readFileSync(file, "utf8")));
        if (!r.success) return { problem: `${file} is malformed: ${zodMessage(r.error)}`, state_age_s: null };
        cached = { mtimeMs: st.mtimeMs, size: st.size, info: r.data };
      }
      return { ...cached.info, state_age_s: Math.max(0, Math.round((now - st.mtimeMs) / 1000)) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return {
        problem:
          code === "ENOENT"
            ? `no mesh state from the agent yet (${file})`
            : `cannot read ${file} (${code ?? (err as Error).message})`,
        state_age_s: null,
      };
    }
  };
}
