// `unibus-agent mesh up`: the control plane's mesh before there is a control plane. deploy-cluster.sh
// runs it on each server before membershipd (ROUTE_NETWORK=wg): the interface with the node's own
// key, its WG_IP and the cluster's other servers as peers, so the NATS routes have a network to
// form over. It only adds and updates: peers the running agent added from node.mesh stay, and an
// address a peer already holds on the interface (a control-plane node's newer key) is not taken.
import type { WgPeer } from "../../../schemas/mod.ts";
import { applyPlan, bringUp, readInterface, run, type Run, type WgMode } from "./device.ts";
import { planPeers } from "./peer-plan.ts";

export interface MeshUpOptions {
  iface: string;
  keyFile: string;
  /** The public key of keyFile's private key: this node, left out of the peers. */
  publicKey: string;
  overlayIp: string;
  prefixBits: number;
  listenPort: number;
  peers: readonly WgPeer[];
  run?: Run;
}

export interface MeshUpResult {
  interface: string;
  /** How it was made now; null when it was there already. */
  mode: WgMode | null;
  public_key: string;
  overlay: string;
  listen_port: number;
  added: number;
  updated: number;
  /** Static peers left out: their address is another key's on the interface. */
  skipped: string[];
}

export async function meshUp(o: MeshUpOptions): Promise<MeshUpResult> {
  const r = o.run ?? run;
  const mode = await bringUp(
    { iface: o.iface, keyFile: o.keyFile, overlayIp: o.overlayIp, prefixBits: o.prefixBits, listenPort: o.listenPort },
    r,
  );
  const dump = await readInterface(o.iface, r);
  if (!dump) throw new Error(`${o.iface} did not come up`);
  const holder = new Map(dump.peers.flatMap((p) => p.allowed_ips.map((ip) => [ip, p.public_key] as const)));
  const skipped: string[] = [];
  const statics = o.peers.filter((p) => {
    if (p.public_key === o.publicKey) return false;
    const held = p.allowed_ips.map((ip) => holder.get(ip)).find((k) => k !== undefined && k !== p.public_key);
    if (held) skipped.push(p.node);
    return !held;
  });
  const keys = new Set(statics.map((p) => p.public_key));
  const plan = planPeers(
    statics,
    dump.peers.filter((p) => keys.has(p.public_key)),
    true,
  );
  await applyPlan(o.iface, plan.clauses, r);
  return {
    interface: o.iface,
    mode,
    public_key: dump.public_key,
    overlay: `${o.overlayIp}/${o.prefixBits}`,
    listen_port: o.listenPort,
    added: plan.added,
    updated: plan.updated,
    skipped,
  };
}
