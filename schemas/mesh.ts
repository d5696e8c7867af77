// The WireGuard mesh (issue 27): what a node's agent asks membershipd for (`node.mesh`, its peers
// a page at a time) and the nudge membershipd sends when the peers change.
import { z } from "zod";
import { Ipv4, Slug, WgEndpoint, WgPublicKey } from "./ids.ts";

/** Peers per page of node.mesh: 1,000 peers are about 160 KB, under the server's 1 MB payload limit. */
export const MAX_MESH_PAGE = 1000;

/** node.wg_update: the node's WireGuard key and endpoint from now on (both, as they should be). */
export const WgUpdateArgs = z.object({ node: Slug, wg_key: WgPublicKey, wg_endpoint: WgEndpoint.nullable() }).strict();

export const WgUpdateResult = z
  .object({ node: Slug, wg_key: WgPublicKey, wg_endpoint: WgEndpoint.nullable(), changed: z.boolean() })
  .strict();
export type WgUpdateResult = z.infer<typeof WgUpdateResult>;

export const MeshArgs = z
  .object({
    node: Slug,
    /** The last peer (by node name) of the page before; absent for the first page. */
    after: Slug.optional(),
    limit: z.number().int().min(1).max(MAX_MESH_PAGE).default(MAX_MESH_PAGE),
  })
  .strict();

/** One peer as `wg set … peer KEY endpoint HOST:PORT allowed-ips IP/32` takes it. */
export const WgPeer = z
  .object({
    node: Slug,
    public_key: WgPublicKey,
    overlay_ip: Ipv4,
    endpoint: WgEndpoint.nullable(),
    allowed_ips: z.array(z.string().regex(/^[\d.]+\/\d{1,2}$/)).max(8),
  })
  .strict();
export type WgPeer = z.infer<typeof WgPeer>;

/**
 * The control plane's own mesh (deploy-cluster.sh with ROUTE_NETWORK=wg): the cluster's other
 * servers, brought up by `unibus-agent mesh up` before membershipd and kept by the agent whatever
 * node.mesh says, since the routes that carry node.mesh's answers run over them.
 */
export const StaticMeshPeers = z
  .object({ peers: z.array(WgPeer.omit({ allowed_ips: true })).max(MAX_MESH_PAGE) })
  .strict();
export type StaticMeshPeers = z.infer<typeof StaticMeshPeers>;

export const MeshResult = z
  .object({
    node: Slug,
    /** The asking node's WireGuard public key as the fleet holds it: its interface must use the matching private key. */
    public_key: WgPublicKey,
    /** Its endpoint as the fleet holds it (null: none given). */
    endpoint: WgEndpoint.nullable(),
    /** The asking node's own overlay address and the overlay's CIDR (its interface's prefix). */
    overlay_ip: Ipv4,
    overlay_cidr: z.string().regex(/^[\d.]+\/\d{1,2}$/),
    /** The UDP port its interface listens on: its endpoint's, as it gave it at enrollment (51820 without one). */
    listen_port: z.number().int().min(1).max(65_535),
    peers: z.array(WgPeer).max(MAX_MESH_PAGE),
    /** The `after` of the next page; null on the last. */
    next: Slug.nullable(),
    /** The fleet's version the page was read at: pages of one version are one consistent list. */
    version: z.number().int().min(0),
  })
  .strict();
export type MeshResult = z.infer<typeof MeshResult>;

/** membershipd publishes here (a signed control message) when the mesh's peers change: agents re-fetch. */
export const MESH_CHANGED_SUBJECT = "unibus.mesh.changed";

/** At most this many peers are listed in an agent's status (peer_count counts them all). */
export const MAX_STATUS_PEERS = 1000;

/** What an agent says of its mesh interface in `status` (agent.mesh): absent when it runs without --mesh. */
export const MeshInfo = z
  .object({
    interface: z.string(),
    /** How the interface runs: the kernel's WireGuard or wireguard-go; null before it is up. */
    mode: z.enum(["kernel", "wireguard-go"]).nullable(),
    overlay_ip: Ipv4.nullable(),
    listen_port: z.number().int().min(0).max(65_535).nullable(),
    /** The fleet version (node.mesh's) its peers were last set from. */
    version: z.number().int().min(0).nullable(),
    last_sync: z.string().nullable(),
    /** Why the last sync failed; null when it did not. */
    problem: z.string().nullable(),
    /** The overlay's nftables filter (--firewall): off, in place, not applied yet, or failed (firewall_problem says why). */
    firewall: z.enum(["off", "nftables", "pending", "failed"]),
    firewall_problem: z.string().nullable(),
    peer_count: z.number().int().min(0),
    peers: z
      .array(
        z
          .object({
            node: Slug.nullable(),
            public_key: WgPublicKey,
            endpoint: z.string().nullable(),
            /** The last handshake's time; null when there was none. */
            latest_handshake: z.string().nullable(),
          })
          .strict(),
      )
      .max(MAX_STATUS_PEERS),
  })
  .strict();
export type MeshInfo = z.infer<typeof MeshInfo>;
