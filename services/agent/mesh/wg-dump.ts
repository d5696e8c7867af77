// `wg show IF dump`, read: the interface's line (private key, public key, listen port, fwmark),
// then one line per peer (public key, preshared key, endpoint, allowed IPs, latest handshake, rx,
// tx, persistent keepalive), tab-separated, "(none)" or "off" where a field has no value.
// The private key is in the first line: only its public key and port are kept.

export interface WgDumpPeer {
  public_key: string;
  endpoint: string | null;
  allowed_ips: string[];
  /** Unix seconds of the last handshake; 0 when there was none. */
  latest_handshake: number;
  rx_bytes: number;
  tx_bytes: number;
  /** Seconds between keepalives; 0 when off. */
  keepalive: number;
}

export interface WgDump {
  public_key: string;
  listen_port: number;
  peers: WgDumpPeer[];
}

/** The dump's text; null when it is not one (no interface line). */
export function parseWgDump(text: string): WgDump | null {
  const lines = text.split("\n").filter((l) => l.length > 0);
  const head = lines[0]?.split("\t");
  if (!head || head.length < 4) return null;
  const peers: WgDumpPeer[] = [];
  for (const line of lines.slice(1)) {
    const f = line.split("\t");
    if (f.length < 8) continue;
    peers.push({
      public_key: f[0]!,
      endpoint: f[2] === "(none)" ? null : f[2]!,
      allowed_ips: f[3] === "(none)" ? [] : f[3]!.split(","),
      latest_handshake: Number(f[4]) || 0,
      rx_bytes: Number(f[5]) || 0,
      tx_bytes: Number(f[6]) || 0,
      keepalive: Number(f[7]) || 0,
    });
  }
  return { public_key: head[1]!, listen_port: Number(head[2]) || 0, peers };
}
