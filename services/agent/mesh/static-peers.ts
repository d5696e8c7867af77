// The control plane's static peers (--mesh-static FILE, written by deploy-cluster.sh): the cluster's
// other servers, whose routes carry every node.mesh answer, so they must be peers before membershipd
// can answer and stay peers when it cannot. The fleet's entry for the same node wins (it is newer:
// a `wg update` of a control-plane node); a static peer the fleet no longer lists stays, as the
// cluster's servers are cluster.env's to change, not the fleet's.
import { readFileSync } from "node:fs";
import { StaticMeshPeers, type WgPeer } from "../../../schemas/mod.ts";
import { zodMessage } from "../../core/mod.ts";

/** At most this many bytes: a 1,000-peer file is about 200 KB. */
const MAX_FILE_BYTES = 1024 * 1024;

/** The file's peers as node.mesh lists them (allowed IPs: the overlay address alone); throws one sentence. */
export function readStaticPeers(file: string): WgPeer[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read the static peers file ${file} (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  if (text.length > MAX_FILE_BYTES) throw new Error(`the static peers file ${file} is over ${MAX_FILE_BYTES} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`the static peers file ${file} is not JSON`);
  }
  const r = StaticMeshPeers.safeParse(json);
  if (!r.success) throw new Error(`the static peers file ${file} is malformed: ${zodMessage(r.error)}`);
  return r.data.peers.map((p) => ({ ...p, allowed_ips: [`${p.overlay_ip}/32`] }));
}

/** The fleet's peers and the static ones it does not list (by node, key or address); this node itself left out. */
export function withStaticPeers(
  fleet: readonly WgPeer[],
  statics: readonly WgPeer[],
  self: { node: string; public_key: string },
): WgPeer[] {
  const nodes = new Set(fleet.map((p) => p.node));
  const keys = new Set(fleet.map((p) => p.public_key));
  const ips = new Set(fleet.map((p) => p.overlay_ip));
  const extra = statics.filter(
    (p) =>
      p.node !== self.node &&
      p.public_key !== self.public_key &&
      !nodes.has(p.node) &&
      !keys.has(p.public_key) &&
      !ips.has(p.overlay_ip),
  );
  return extra.length === 0 ? [...fleet] : [...fleet, ...extra];
}
