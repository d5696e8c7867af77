// Connects to a NATS route port the way a route does, with or without a client certificate.
// Prints "accepted" when the server answers with its INFO inside the TLS session, "refused: why"
// when it drops the session.
// Usage: route-probe.ts HOST PORT CA_FILE [CERT_FILE KEY_FILE]
import { readFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";

const [host, port, ca, cert, key] = process.argv.slice(2) as [string, string, string, string?, string?];
const done = (verdict: string) => {
  process.stdout.write(verdict + "\n");
  process.exit(0);
};
setTimeout(() => done("refused: no answer within 10 s"), 10_000).unref();
// A route's TLS starts at once (the accepting server sends INFO only inside the session).
const tls = tlsConnect({
  host,
  port: Number(port),
  ca: readFileSync(ca),
  rejectUnauthorized: false,
  ...(cert && key ? { cert: readFileSync(cert), key: readFileSync(key) } : {}),
});
tls.once("error", (e) => done(`refused: ${e.message}`));
tls.once("close", () => done("refused: the server closed the session"));
// TLS 1.3 checks the client's certificate after the handshake: INFO arriving means it passed.
tls.once("data", (d) => done(d.toString().startsWith("INFO ") ? "accepted" : "refused: no INFO"));
