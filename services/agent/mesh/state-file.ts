// The mesh as the agent last saw it (MeshInfo, what `status` reports as agent.mesh), written to a
// file after every sync (--mesh-state) so that the co-located membershipd's /healthz can show the
// interface and each peer's last handshake without privileges of its own (wg needs CAP_NET_ADMIN
// or root's control socket). No secret in it: keys are public ones. The directory is made root's
// (0755) and the file replaced by rename, so its readers never see half of it; put it in a
// directory no other user can write (deploy-cluster.sh: /run/unibus-agent), where nothing can be
// planted under its name.
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { MeshInfo } from "../../../schemas/mod.ts";

export function writeMeshState(file: string, info: MeshInfo, at = new Date()): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ ...info, written_at: at.toISOString() })}\n`, { mode: 0o644 });
  renameSync(tmp, file);
}
