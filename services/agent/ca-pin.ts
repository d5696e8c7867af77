// Trust on first use: before a joining node sends anything, it fetches the certificate chain the
// server presents and checks that the CA in it has the fingerprint its invite carries. NATS 2.9
// sends INFO in clear and then upgrades to TLS, so this speaks just enough of the protocol to
// reach the handshake, and never sends a CONNECT.
import { X509Certificate } from "node:crypto";
import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect, type PeerCertificate, type DetailedPeerCertificate } from "node:tls";
import type { Codes } from "../core/mod.ts";

export class CaPinError extends Error {
  constructor(
    readonly code: Codes<"E_CA_MISMATCH" | "E_UNREACHABLE" | "E_NO_TLS">,
    message: string,
  ) {
    super(message);
  }
}

/** SHA-256 of a certificate's DER, lowercase hex without colons (as invites carry it). */
export function fingerprintOf(cert: X509Certificate): string {
  return cert.fingerprint256.replace(/:/g, "").toLowerCase();
}

function readInfoLine(socket: Socket, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => fail(new CaPinError("E_UNREACHABLE", "the server sent no INFO")), timeoutMs);
    const fail = (e: Error) => {
      clearTimeout(timer);
      socket.off("data", onData);
      reject(e);
    };
    const onData = (d: Buffer) => {
      buf += d.toString("latin1");
      const end = buf.indexOf("\r\n");
      if (end < 0)
        return buf.length > 64 * 1024
          ? fail(new CaPinError("E_UNREACHABLE", "not a NATS server (no INFO line)"))
          : undefined;
      clearTimeout(timer);
      socket.off("data", onData);
      const line = buf.slice(0, end);
      if (!line.startsWith("INFO ")) return reject(new CaPinError("E_UNREACHABLE", "not a NATS server (no INFO line)"));
      try {
        resolve(JSON.parse(line.slice(5)));
      } catch {
        reject(new CaPinError("E_UNREACHABLE", "the server's INFO is not JSON"));
      }
    };
    socket.on("data", onData);
    socket.once("error", (e) => fail(new CaPinError("E_UNREACHABLE", e.message)));
  });
}

/** Every certificate the server presented, leaf first. */
function presentedChain(peer: DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  for (
    let c: PeerCertificate | undefined = peer;
    c?.raw && !seen.has(c.fingerprint256);
    c = (c as DetailedPeerCertificate).issuerCertificate
  ) {
    seen.add(c.fingerprint256);
    out.push(new X509Certificate(c.raw));
  }
  return out;
}

/**
 * Connects to `url`, reads the chain and returns the CA certificate (PEM) whose fingerprint is
 * `expected`, after checking it issued the server's certificate. Throws E_CA_MISMATCH otherwise.
 */
export async function fetchPinnedCa(url: string, expected: string, timeoutMs = 5000): Promise<string> {
  const { hostname, port } = new URL(url);
  const host = hostname.replace(/^\[|\]$/g, "");
  const socket = tcpConnect({ host, port: Number(port || 4222) });
  socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
  try {
    const info = await readInfoLine(socket, timeoutMs);
    if (!info.tls_required && !info.tls_available)
      throw new CaPinError("E_NO_TLS", `${url} does not offer TLS; refusing to join over a clear connection`);
    const chain = await new Promise<X509Certificate[]>((resolve, reject) => {
      const t = tlsConnect(
        { socket, rejectUnauthorized: false, ...(/^[\d.:]+$/.test(host) ? {} : { servername: host }) },
        () => {
          resolve(presentedChain(t.getPeerCertificate(true)));
          t.destroy();
        },
      );
      t.once("error", (e) => reject(new CaPinError("E_UNREACHABLE", `TLS handshake with ${url} failed: ${e.message}`)));
    });
    const ca = chain.find((c) => fingerprintOf(c) === expected.toLowerCase());
    const leaf = chain[0];
    if (!ca || !leaf || !leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) {
      const seen =
        chain
          .map(fingerprintOf)
          .map((f) => f.slice(0, 16))
          .join(", ") || "none";
      throw new CaPinError(
        "E_CA_MISMATCH",
        `${url} presents a certificate chain without the CA the invite names (expected ${expected.slice(0, 16)}…, saw ${seen}…); refusing to send anything`,
      );
    }
    return ca.toString();
  } finally {
    socket.destroy();
  }
}
