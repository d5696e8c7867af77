// One syslog session over TLS (RFC 5425): connect with the client certificate, verify the server's
// certificate against the configured CA and its name or IP, write the frames, close our side, and
// wait for the server to close its own. RFC 5425 has no application acknowledgement; a server
// closes after reading our close (rsyslog reads and queues every frame before it sees the end of
// the stream), so its close after ours is the one proof TCP offers that it read everything we
// wrote. A write that completed only reached our kernel, and is not counted as delivered.
import { isIP } from "node:net";
import { checkServerIdentity, connect, type ConnectionOptions, type TLSSocket } from "node:tls";
import type { Codes } from "../core/mod.ts";

export interface SyslogTarget {
  host: string;
  port: number;
  /** PEM: the CA the server's certificate must chain to; ours (cert, key) is presented to it. */
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** The name the server's certificate must carry, when it is not `host`. */
  serverName?: string;
}

export type SyslogErrorCode = Codes<"E_SYSLOG_TLS" | "E_SYSLOG_UNAVAILABLE">;

export class SyslogError extends Error {
  constructor(
    readonly code: SyslogErrorCode,
    message: string,
    /** Bytes were written before it failed: the server may have read some of them. */
    readonly inDoubt: boolean,
  ) {
    super(message);
  }
}

/** Node's and OpenSSL's codes for a certificate or handshake the TLS layer refused. */
const TLS_CODES =
  /^(UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_|CERT_|ERR_TLS_|ERR_SSL_|HOSTNAME_MISMATCH|INVALID_CA|INVALID_PURPOSE|ERR_OSSL_)/;

function describe(err: NodeJS.ErrnoException, t: SyslogTarget, inDoubt: boolean): SyslogError {
  const where = `${t.host}:${t.port}`;
  const code = err.code ?? "";
  if (TLS_CODES.test(code))
    return new SyslogError(
      "E_SYSLOG_TLS",
      `the syslog server ${where} failed TLS (${code}: ${err.message}); nothing is sent to it until its certificate verifies against the configured CA`,
      inDoubt,
    );
  return new SyslogError(
    "E_SYSLOG_UNAVAILABLE",
    `the syslog server ${where} is unreachable (${code || err.message})`,
    inDoubt,
  );
}

function tlsOptions(t: SyslogTarget): ConnectionOptions {
  const name = t.serverName ?? t.host;
  return {
    host: t.host,
    port: t.port,
    ca: t.ca,
    cert: t.cert,
    key: t.key,
    minVersion: "TLSv1.2",
    // SNI takes names only; an IP is checked against the certificate's IP addresses.
    ...(isIP(name) ? {} : { servername: name }),
    ...(t.serverName ? { checkServerIdentity: (_host: string, cert) => checkServerIdentity(name, cert) } : {}),
  };
}

/**
 * Sends `frames` in one session. Resolves once the server has closed the session after ours
 * (every frame read); rejects with a SyslogError otherwise, `inDoubt` when some bytes had left.
 */
export function sendSession(t: SyslogTarget, frames: Buffer[], timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let written = false;
    let ended = false;
    let settled = false;
    const socket: TLSSocket = connect(tlsOptions(t));
    const unavailable = (what: string) =>
      new SyslogError("E_SYSLOG_UNAVAILABLE", `the syslog server ${t.host}:${t.port} ${what}`, written);
    const finish = (err: SyslogError | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      err ? reject(err) : resolve();
    };
    const timer = setTimeout(() => finish(unavailable(`did not finish the session within ${timeoutMs} ms`)), timeoutMs);
    // Nothing is expected from the server; reading keeps its end of stream from waiting behind unread bytes.
    socket.resume();
    socket.on("secureConnect", () => {
      written = true;
      socket.write(Buffer.concat(frames));
      ended = true;
      socket.end();
    });
    socket.on("error", (err) => finish(describe(err, t, written)));
    // The server's end of stream: the session's proof when it follows ours.
    socket.on("end", () => finish(ended ? null : unavailable("closed the session before it ended")));
    socket.on("close", () => finish(unavailable("dropped the connection")));
  });
}
