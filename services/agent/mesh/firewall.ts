// The overlay's packet filter, rendered for nftables: one table of the agent's own (`inet unibus`)
// replaced whole in one transaction at each change, so a half-applied rule set never exists and
// nothing else's rules are touched. On the mesh's interface only its peers' overlay addresses get
// in (WireGuard already drops inner addresses a peer may not use; this also holds when a peer's
// removal from the interface lags), and no IPv6 at all. The route port, when given, takes only the
// cluster's peers, on every interface: it stays mutual TLS, this only narrows who may knock.
export const FIREWALL_TABLE = "unibus";

export interface FirewallWanted {
  iface: string;
  /** The peers' overlay addresses. */
  peers: readonly string[];
  /** The NATS route port (cluster mode) and the addresses of the cluster's other servers. */
  route?: { port: number; peers: readonly string[] };
}

const set = (name: string, elements: readonly string[]) =>
  [
    `  set ${name} {`,
    "    type ipv4_addr",
    ...(elements.length ? [`    elements = { ${[...elements].sort().join(", ")} }`] : []),
    "  }",
  ].join("\n");

/** The `nft -f -` script: the table made (so the delete cannot fail), deleted, and written anew. */
export function renderFirewall(w: FirewallWanted): string {
  const iface = JSON.stringify(w.iface);
  const rules = [
    `    iifname ${iface} meta nfproto ipv6 counter drop comment "the overlay carries no IPv6"`,
    `    iifname ${iface} ip saddr != @mesh_peers counter drop comment "the overlay: only its peers"`,
  ];
  if (w.route)
    rules.push(
      `    tcp dport ${w.route.port} meta nfproto ipv6 counter drop comment "the route port: IPv4 only"`,
      `    tcp dport ${w.route.port} ip saddr != @route_peers counter drop comment "the route port: only the cluster's peers"`,
    );
  return [
    `table inet ${FIREWALL_TABLE}`,
    `delete table inet ${FIREWALL_TABLE}`,
    `table inet ${FIREWALL_TABLE} {`,
    set("mesh_peers", w.peers),
    ...(w.route ? [set("route_peers", w.route.peers)] : []),
    "  chain input {",
    "    type filter hook input priority filter; policy accept;",
    ...rules,
    "  }",
    "}",
    "",
  ].join("\n");
}
