// The WireGuard mesh on the agent's side (issue 27): its interface kept in step with node.mesh.
export { Mesh, type MeshOptions } from "./mesh.ts";
export { planPeers, type PeerPlan } from "./peer-plan.ts";
export { parseWgDump, type WgDump, type WgDumpPeer } from "./wg-dump.ts";
export { meshUp, type MeshUpOptions, type MeshUpResult } from "./mesh-up.ts";
export { readStaticPeers, withStaticPeers } from "./static-peers.ts";
